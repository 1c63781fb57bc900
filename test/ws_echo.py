#!/usr/bin/python3
"""A websocket echo server for test_24 (Debian's python3-websockets, asyncio API).

    /usr/bin/python3 ws_echo.py PORT [CERT KEY]

Listens on 127.0.0.1:PORT, with TLS when CERT and KEY are given, and prints one line
`ready PORT` once it accepts connections. Every binary message comes back unchanged. A
text message `info` is answered with a JSON text message: the request path the backend
saw, whether the connection is TLS, the Host header. Messages up to 64 MiB, no
compression (the bytes go over the proxy as they are), no keep-alive pings (a test times
out on its own). Runs until it gets SIGTERM.
"""
import asyncio
import json
import signal
import ssl
import sys

import websockets

MAX_SIZE = 64 << 20


async def echo(ws):
    async for msg in ws:
        if isinstance(msg, str):
            if msg == 'info':
                await ws.send(json.dumps({
                    'path': ws.path,
                    'tls': ws.transport.get_extra_info('sslcontext') is not None,
                    'host': ws.request_headers.get('Host'),
                }))
            else:
                await ws.send(f'unknown command {msg!r}')
        else:
            await ws.send(msg)


async def main(port, cert, key):
    ctx = None
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with websockets.serve(echo, '127.0.0.1', port, ssl=ctx, max_size=MAX_SIZE,
                                max_queue=4, compression=None, ping_interval=None,
                                close_timeout=5):
        print(f'ready {port}', flush=True)
        await stop


if __name__ == '__main__':
    args = sys.argv[1:]
    if len(args) not in (1, 3):
        sys.exit(__doc__)
    asyncio.run(main(int(args[0]), *(args[1:] if len(args) == 3 else (None, None))))
