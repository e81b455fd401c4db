"""An RTSP camera for the tests: JPEG frames from a directory over RTP/JPEG, TCP only.

Run by Debian's own Python 3 (``/usr/bin/python3``), which has GStreamer's RTSP server
through ``python3-gi`` and ``gir1.2-gst-rtsp-server-1.0`` (scripts/test installs
them); the project's venv does not. Usage:

    /usr/bin/python3 rtsp_server_gst.py PORT 'DIR/%05d.jpg' FPS WIDTH HEIGHT

Prints "ready" once it listens on 127.0.0.1:PORT, serving rtsp://127.0.0.1:PORT/stream.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

Gst.init(None)
port, pattern, fps, width, height = sys.argv[1:6]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(f"( multifilesrc location={pattern} loop=true "
                   f"caps=image/jpeg,framerate={fps}/1,width={width},height={height} "
                   "! rtpjpegpay name=pay0 pt=26 )")
factory.set_shared(True)
factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
server.get_mount_points().add_factory("/stream", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
