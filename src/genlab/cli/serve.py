"""``genlab serve``: the local web studio (genlab.serve) on 127.0.0.1."""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
from pathlib import Path

from genlab.cli.common import Formatter, Num
from genlab.errors import GenlabError


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from genlab.serve.app import create_app
        from genlab.serve.security import LOOPBACK
    except ImportError as e:
        raise GenlabError(f"the studio needs its extra: pip install 'genlab[serve]' ({e.name} is missing)") from None
    root = Path(args.root).expanduser()
    token = None
    if args.host.lower() not in LOOPBACK:  # reachable from other machines: every request needs the token
        token = secrets.token_urlsafe(24)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host.strip("[]"), args.port))
    except OSError as e:
        raise GenlabError(f"--host {args.host} --port {args.port}: cannot listen there ({e.strerror or e})") from None
    # Listen before the address is printed: a browser (or a script) that connects the moment it reads the line waits in
    # the backlog while uvicorn starts, instead of being refused.
    sock.listen(128)
    port = sock.getsockname()[1]
    shown = f"[{args.host.strip('[]')}]" if family == socket.AF_INET6 else args.host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    app = create_app(root, runs_root=args.runs, bound=shown, token=token, device=args.device)
    print(f"genlab studio: {url}  (history in {root}; Ctrl-C stops it)", flush=True)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, limit_concurrency=64)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    print("genlab studio: stopped", file=sys.stderr)
    return 0


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="a local web studio: text, chat, images, segmentation, editing, training, history, queue "
        "(pip install 'genlab[serve]')",
        formatter_class=Formatter,
        description="Serve the genlab studio, one page that runs the shipped models in your browser: Text (tokens "
        "streamed as they come, Stop; and chat), Image (class or prompt, sampler, steps, guidance, seed; a live "
        "preview of the denoising; the same seed gives the same bytes; img2img from an upload or any result), "
        "Segment (click positive or negative points, or drag a box: three masks with their predicted IoU, the image "
        "encoded once and the decoder run per click; everything mode; PNG or COCO RLE), Edit (inpaint a painted "
        "area, retarget with a width slider, reshuffle by dragging a box, texture synthesis, Deep Image Prior with "
        "its progress), Train (start, watch the loss and samples, stop, resume the runs under --runs), History "
        "(every result with its parameters, kept in SQLite across restarts, searchable, favourites, delete, 'reuse "
        "settings'; PNGs carry their parameters in text chunks) and Queue (one worker; see, add and cancel jobs). "
        "It calls the same library functions as the commands, works offline and loads nothing from other hosts. "
        "It listens on 127.0.0.1 unless --host says otherwise; on another host every request needs the token in "
        "the address it prints. Requests naming another host (DNS rebinding) or coming from another site are "
        "refused; uploads are capped in bytes and pixels.",
        epilog="""examples:
  genlab serve                                   # http://127.0.0.1:7860, opens your browser
  genlab serve --port 0 --no-browser             # any free port; the address is printed
  genlab serve --root ~/my-studio                # keep this history apart
""",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (another than loopback needs the token)")
    p.add_argument("--port", type=Num(int, 0, 65535), default=7860, help="port (0: any free one)")
    p.add_argument("--root", default="~/.genlab/studio", help="folder of the history database and result files")
    p.add_argument("--runs", default="runs", help="the Train tab's folder: runs it starts go here, and are listed")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.add_argument("--no-browser", action="store_true", dest="no_browser", help="do not open a browser")
    p.set_defaults(func=cmd_serve)
