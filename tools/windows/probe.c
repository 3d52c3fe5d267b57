/* A throwaway Lua module that checks the Windows tool chain end to end before the real
 * module is ported (issue 12): it is built with mingw-w64 against the static Schannel
 * libcurl of tools/windows/deps.sh and each Windows Lua's DLL, and run under wine by
 * tools/windows/probe.lua. Nothing of downloadtask is in here on purpose.
 *
 *   probe.get(url [, cafile [, no_revoke]]) -> status, body_length, peer_ip
 *                                           | nil, curl message, CURLcode
 *   probe.version()           -> curl_version()
 */
#include <stddef.h>
#include <curl/curl.h>
#include "lua.h"
#include "lauxlib.h"

#ifdef _WIN32
#define PROBE_EXPORT __declspec(dllexport)
#else
#define PROBE_EXPORT __attribute__((visibility("default")))
#endif

PROBE_EXPORT int luaopen_probe(lua_State *L);

/* Counts the body instead of keeping it: the caller compares the length with the file's. */
static size_t count_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    (void)data;
    *(curl_off_t *)userdata += (curl_off_t)(size * nmemb);
    return size * nmemb;
}

static int probe_get(lua_State *L)
{
    const char *url = luaL_checkstring(L, 1);
    const char *cafile = luaL_optstring(L, 2, NULL);
    int no_revoke = lua_toboolean(L, 3);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_off_t length = 0;
    long status = 0;
    char *ip = NULL;
    CURLcode rc;
    CURL *h = curl_easy_init();

    if (h == NULL)
        return luaL_error(L, "curl_easy_init failed");
    /* Each setopt can fail (an option compiled out): the first failure is the answer. */
    rc = curl_easy_setopt(h, CURLOPT_URL, url);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, count_body);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_WRITEDATA, &length);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 20000L);
    if (rc == CURLE_OK && cafile != NULL) rc = curl_easy_setopt(h, CURLOPT_CAINFO, cafile);
    /* Schannel asks for revocation status by default, which a test CA cannot give:
     * whether that fails here is what the third argument lets the probe find out. */
    if (rc == CURLE_OK && no_revoke)
        rc = curl_easy_setopt(h, CURLOPT_SSL_OPTIONS, (long)CURLSSLOPT_NO_REVOKE);
    if (rc == CURLE_OK) rc = curl_easy_perform(h);
    if (rc == CURLE_OK) rc = curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK) rc = curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip);
    if (rc != CURLE_OK) {
        lua_pushnil(L);
        lua_pushstring(L, errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
        lua_pushinteger(L, (lua_Integer)rc);
        curl_easy_cleanup(h);
        return 3;
    }
    lua_pushinteger(L, (lua_Integer)status);
    lua_pushnumber(L, (lua_Number)length);
    lua_pushstring(L, ip != NULL ? ip : "");   /* before cleanup: ip points into the handle */
    curl_easy_cleanup(h);
    return 3;
}

static int probe_version(lua_State *L)
{
    lua_pushstring(L, curl_version());
    return 1;
}

PROBE_EXPORT int luaopen_probe(lua_State *L)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_ALL);

    if (rc != CURLE_OK)
        return luaL_error(L, "curl_global_init: %s", curl_easy_strerror(rc));
    lua_newtable(L);
    lua_pushcfunction(L, probe_get);
    lua_setfield(L, -2, "get");
    lua_pushcfunction(L, probe_version);
    lua_setfield(L, -2, "version");
    return 1;
}
