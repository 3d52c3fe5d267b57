-- LÖVE 11 configuration of the downloadtask asset manager example (see main.lua).
function love.conf(t)
  t.identity = "downloadtask-example"
  t.version = "11.0"
  t.window.title = "downloadtask asset manager (LÖVE)"
  t.window.width = 800
  t.window.height = 600
  t.window.resizable = false
  t.window.vsync = 1
  -- Only what the example draws with: no audio device is needed (CI has none).
  t.modules.audio = false
  t.modules.sound = false
  t.modules.joystick = false
  t.modules.physics = false
  t.modules.video = false
  t.modules.touch = false
end
