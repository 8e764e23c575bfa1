import socketio

sio = socketio.AsyncServer(async_mode="asgi")
app = socketio.ASGIApp(sio)


@sio.on("shout")
async def shout(sid: str, text: str) -> None:
    await sio.emit("heard", text.upper(), to=sid)
