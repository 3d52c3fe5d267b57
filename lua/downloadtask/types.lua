---@meta downloadtask
-- Type stubs of the downloadtask C module for lua-language-server (LuaCATS annotations).
-- Editors read this file; nothing requires it at run time (`require "downloadtask"` loads
-- the C module). The rock installs it as <tree>/share/lua/<v>/downloadtask/types.lua: add
-- that directory (or this repository's lua/ directory) to `workspace.library` and
-- `require "downloadtask"` gets these types, by the name on the ---@meta line above.
-- The full reference is `make doc` (from the C sources' comments); spec/api/types_spec.lua
-- fails when a function, option or result field of the C sources is missing here.

---@class downloadtask
---@field version string the module's version, like `"0.1.0"`
local dt = {}

---The options of `downloadFile`. A wrong type, a missing `url`, an unknown name or a
---negative number raises an error at the call naming the option. Integer options take an
---integral number on every Lua version (`2000.0` yes, `1.5` no).
---@class downloadtask.Options
---@field url string required; `http://` or `https://` only (also every redirect; https to http is refused)
---@field filePath? string destination; replaced only by a complete 2xx body. Absent: a private temporary file under `tempDir`, given as `res.tempFilePath`
---@field header? table<string, string|number> request headers (name: an HTTP token; value without CR, LF or zero byte)
---@field timeout? integer ms for the whole download from when it leaves the queue (each attempt with `retry`); default 60000; 0: none. Fails with errno 5
---@field success? fun(res: downloadtask.Result) a response was received, whatever its status code
---@field fail? fun(err: downloadtask.Error) no usable response
---@field complete? fun(result: downloadtask.Result|downloadtask.Error) after `success` or `fail`, with the same table
---@field connectTimeout? integer (ext) ms to connect; default 30000; 0: none
---@field maxRedirects? integer (ext) redirects followed; default 10; 0: a 3xx is the final response. More fail with errno 600008
---@field maxFileSize? integer (ext) bytes; fail with errno 603301 as soon as more would be written. Default: no limit
---@field insecure? boolean (ext) skip TLS peer and host verification; default false
---@field caFile? string (ext) trust this CA bundle instead of the system's
---@field proxy? string (ext) proxy URL; `""`: no proxy, ignoring `http_proxy`, `https_proxy`, `all_proxy`; absent: those variables apply
---@field stallTimeout? integer (ext) ms without a body byte before failing with errno 5; default 0: off
---@field sha256? string (ext) 64 hex digits; for a 2xx a mismatch fails with errno 603304 and leaves the destination as it was
---@field rateLimit? integer (ext) bytes per second for this download; default 0: off
---@field etag? string (ext) sent as `If-None-Match`; a 304 is a `success` with nothing written
---@field ifModifiedSince? integer|string (ext) epoch seconds or an HTTP date (as in `last-modified`), sent as `If-Modified-Since`; a 304 as for `etag`
---@field resume? boolean (ext) needs `filePath`: keep the part file (`.dt.<hash>.part` beside it) when the download fails and continue it next time; default false
---@field durable? boolean (ext) fsync the file before the rename and the directory after it; default false
---@field retry? integer (ext) retries of transient failures (connect errors, resets, timeouts, 408, 429, 5xx); default 0
---@field priority? integer (ext) the queue starts higher priorities first (default 0; negative ones after it); equal ones in call order
---@field createDirs? boolean (ext) create the missing parent directories of `filePath` (`mkdir -p`), removed again (while empty) when nothing is saved; default false
---@field segments? integer (ext) 1-16: fetch a body of at least 2 MiB from a server that takes ranges over up to this many connections; default 1, or one range per URL with `mirrors` (`segments = 1` given: `url` alone)
---@field mirrors? string[] (ext) up to 16 other http(s) URLs of the same file the ranges are spread over; one that fails or differs is dropped

---Given to `success` and `complete`, and returned by `task:await()`: a response was received,
---whatever its status code.
---@class downloadtask.Result
---@field statusCode integer HTTP status of the final response (after redirects)
---@field filePath? string the destination, when `filePath` was given and the status is 2xx (not 304)
---@field tempFilePath? string the file holding the body when no `filePath` was given or the status is not 2xx: yours, remove it when done
---@field header table<string, string> headers of the final response; names in lower case, repeats joined with ", "
---@field dataLength integer bytes written
---@field sha256? string (ext) hex digest of the body, when the `sha256` option was given (for a 304: of the destination as it stands, else of the empty body)
---@field attempts integer (ext) requests made by `retry` (1 without it; `resume()` and a fall-back to one connection start none)
---@field segments integer (ext) connections the body came over (1 unless `segments` split it)
---@field cookies? string[] (ext) the final response's `Set-Cookie` values, in order; absent when there are none
---@field profile downloadtask.Profile timings and connection facts
---@field errMsg string `"downloadFile:ok"`

---Given to `fail` and `complete`, and returned by `task:await()` after `nil`.
---@class downloadtask.Error
---@field errMsg string `"downloadFile:fail <reason>"`; exactly `"downloadFile:fail abort"` after `abort()`
---@field errno integer 600000 network, 600001 connect/resolve/TLS, 600003 abort, 5 timeout, 600008 too many redirects, 600009 invalid URL (or a redirect to another scheme), 603300 save file error, 603301 max file size, 603303 permission denied, 603304 checksum mismatch
---@field attempts integer (ext) requests made (1 without `retry`; 0 for an abort before the first request)

---`res.profile`: times in ms since the epoch (0 where it did not happen) and connection facts.
---@class downloadtask.Profile
---@field fetchStart number
---@field domainLookUpStart number
---@field domainLookUpEnd number
---@field connectStart number
---@field connectEnd number
---@field SSLconnectionStart number
---@field SSLconnectionEnd number
---@field requestStart number
---@field requestEnd number
---@field responseStart number
---@field responseEnd number
---@field redirectStart number
---@field redirectEnd number
---@field peerIP string the server's address
---@field port integer the server's port
---@field protocol string `"http1.0"`, `"http1.1"`, `"h2"` or `"h3"`
---@field socketReused boolean a connection was reused
---@field sendBytesCount integer bytes sent
---@field receivedBytedCount integer bytes received (sic, as in the mini-program API)
---@field throughputKbps number

---Given to `onProgressUpdate` listeners; values never go down.
---@class downloadtask.ProgressEvent
---@field progress integer 0-100 (0 while the size is unknown)
---@field totalBytesWritten integer bytes in the file so far
---@field totalBytesExpectedToWrite integer expected size, -1 while unknown

---Given to `onHeadersReceived` listeners, once, for the final response.
---@class downloadtask.HeadersEvent
---@field header table<string, string> names in lower case, repeats joined with ", "
---@field statusCode integer HTTP status

---The settings of `configure`; a bad call (unknown name, wrong type) changes nothing.
---@class downloadtask.Settings
---@field maxConcurrent? integer downloads running at once (>= 1; default 10); the rest queue in order
---@field maxPerHost? integer (ext) connections to one host at most (>= 0; default 0: no cap)
---@field progressInterval? integer ms between two progress events of one task (>= 0; default 100)
---@field userAgent? string the `User-Agent` header; default `"downloadtask/<version>"`
---@field tempDir? string where bodies without `filePath` and non-2xx bodies go; default `$TMPDIR`, else `/tmp`
---@field pollBudget? integer (ext) µs that one `poll(0)` may spend delivering (>= 0; default 500; 0: no limit)
---@field rateLimit? integer (ext) bytes/s for all downloads together, shared evenly among the running ones (>= 0; default 0: none)

---@alias downloadtask.State "queued"|"running"|"paused"|"done"|"failed"|"aborted"

---A download, returned by `downloadFile`. `tostring(task)` names its state and URL; with
---Lua 5.4, `local t <close> = dt.downloadFile{...}` aborts it when the scope is left.
---@class downloadtask.DownloadTask
---@field state downloadtask.State (ext) what Lua has seen of the task (read-only)
---@field [any] any (ext) fields of your own (`task.name = "level2"`), kept after the task ends; not `state` nor a method's name
local DownloadTask = {}

---Starts a download and returns at once (queued while `maxConcurrent` downloads run).
---Callbacks and listeners run only inside `poll`, `run` or `await`.
---@param options downloadtask.Options
---@return downloadtask.DownloadTask task in state `"queued"`
function dt.downloadFile(options) end

---Delivers what is ready (events, callbacks, resumed `await`s), waiting up to `ms` for
---something to be ready. Call it once a frame in a game loop.
---@param ms? integer how long to wait (default 0: do not wait)
---@return integer live the number of tasks not yet ended
function dt.poll(ms) end

---Delivers until no task is left. Raises an error inside a listener or another `run`.
function dt.run() end

---Sets module-wide settings.
---@param settings downloadtask.Settings
function dt.configure(settings) end

---(ext) A descriptor that becomes readable when something is ready: wait on it in your own
---loop (luv, cqueues, epoll), then call `poll(0)`.
---@return integer fd
function dt.fd() end

---(ext) The tasks not yet ended (`state` `"queued"`, `"running"` or `"paused"`), in creation order.
---@return downloadtask.DownloadTask[]
function dt.tasks() end

---(ext) Aborts every task of `tasks()`, as `task:abort()`.
---@return integer n how many were aborted
function dt.abortAll() end

---(ext) Waits (as `task:await()`) until every task has ended.
---@param tasks downloadtask.DownloadTask[]
---@return (downloadtask.Result|downloadtask.Error)[] results for each task, the table its `complete` received
function dt.awaitAll(tasks) end

---(ext) Waits (as `task:await()`) until one task has ended (the first of the array when several have).
---@param tasks downloadtask.DownloadTask[] not empty
---@return downloadtask.DownloadTask task the task that ended
---@return downloadtask.Result|nil res when `success` was delivered
---@return downloadtask.Error|nil err when `fail` was delivered
function dt.awaitAny(tasks) end

---Stops the download: `fail` fires once with `"downloadFile:fail abort"` at the next
---`poll`/`run`/`await`, then `complete`. A no-op once the task has ended.
function DownloadTask:abort() end

---(ext) Stops the download, keeping the bytes so far and freeing its connection (a queued task
---keeps its place); `state` becomes `"paused"`, no event fires until `resume`. No-op once ended.
function DownloadTask:pause() end

---(ext) Continues a paused download with a range request, or from the start when the server
---cannot continue it. No-op unless paused.
function DownloadTask:resume() end

---Adds a progress listener.
---@param listener fun(p: downloadtask.ProgressEvent)
function DownloadTask:onProgressUpdate(listener) end

---Removes every registration of `listener`; without it, all progress listeners.
---@param listener? fun(p: downloadtask.ProgressEvent)
function DownloadTask:offProgressUpdate(listener) end

---Adds a listener for the final response's headers (once, before any progress event).
---@param listener fun(h: downloadtask.HeadersEvent)
function DownloadTask:onHeadersReceived(listener) end

---Removes every registration of `listener`; without it, all headers listeners.
---@param listener? fun(h: downloadtask.HeadersEvent)
function DownloadTask:offHeadersReceived(listener) end

---(ext) Waits for the task to end: in a coroutine it yields; outside one it drives the loop.
---@return downloadtask.Result|nil res when `success` was delivered
---@return downloadtask.Error|nil err when `fail` was delivered
function DownloadTask:await() end

return dt
