"""An RTSP camera for the tests: JPEG frames over RTP/JPEG (RFC 2435), TCP only.

Run by Debian's own Python 3 (``/usr/bin/python3``), which has GStreamer's RTSP server
through ``python3-gi`` and ``gir1.2-gst-rtsp-server-1.0`` (scripts/test installs them);
the project's venv does not. ``tests/vision/streams.py`` (``RtspServer``) starts it:

    /usr/bin/python3 rtsp_server_gst.py PORT PATH FPS WIDTH HEIGHT < frames

stdin holds the JPEG frames, each as a 4-byte big-endian length then the bytes, ended
by a zero length: frames never touch the disk. With LOKAALMETEN_RTSP_USER and
LOKAALMETEN_RTSP_PASSWORD set, the camera asks for them (LOKAALMETEN_RTSP_AUTH:
``digest``, the default, or ``basic``), as IP cameras do.

It behaves like a live camera, not like a file: a thread pushes the frames in a loop at
FPS in real time, each timestamped when pushed, and a client sees only frames pushed
after it joined (nothing piles up while nobody watches). Prints "ready" once it listens
on 127.0.0.1:PORT, serving rtsp://127.0.0.1:PORT/PATH.
"""

import os
import struct
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

ROLE = "camera-user"


def read_frames(stream):
    """The length-prefixed JPEGs on ``stream`` up to the zero length."""
    frames = []
    while True:
        (size,) = struct.unpack(">I", stream.read(4))
        if size == 0:
            return frames
        frames.append(stream.read(size))


class Feeder:
    """Pushes the frames into one media's appsrc at a fixed rate until the media goes."""

    def __init__(self, appsrc, frames, fps):
        self.appsrc, self.frames, self.period = appsrc, frames, 1.0 / fps
        self.stopped = threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        due = time.monotonic()
        index = 0
        while not self.stopped.is_set():
            data = self.frames[index % len(self.frames)]
            buffer = Gst.Buffer.new_wrapped(data)  # timestamped by appsrc (do-timestamp)
            if self.appsrc.emit("push-buffer", buffer) != Gst.FlowReturn.OK:
                return  # flushing or shut down: the media is going
            index += 1
            due += self.period
            self.stopped.wait(max(0.0, due - time.monotonic()))


def configure(factory, media, frames, fps):
    """A media was made for a client: feed its appsrc, and stop when it is unprepared."""
    appsrc = media.get_element().get_child_by_name("camera")
    feeder = Feeder(appsrc, frames, fps)
    media.connect("unprepared", lambda _media: feeder.stopped.set())


def authenticate(factory):
    """Require LOKAALMETEN_RTSP_USER/PASSWORD (Digest or Basic) when they are set."""
    user = os.environ.get("LOKAALMETEN_RTSP_USER")
    password = os.environ.get("LOKAALMETEN_RTSP_PASSWORD")
    if user is None or password is None:
        return None
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
    auth = GstRtspServer.RTSPAuth()
    if os.environ.get("LOKAALMETEN_RTSP_AUTH", "digest") == "basic":
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    else:
        auth.add_digest(user, password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    permissions = GstRtspServer.RTSPPermissions()
    for permission in (GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS,
                       GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT):
        permissions.add_permission_for_role(ROLE, permission, True)
    factory.set_permissions(permissions)
    return auth


def main():
    port, path, fps, width, height = sys.argv[1:6]
    frames = read_frames(sys.stdin.buffer)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        "( appsrc name=camera is-live=true do-timestamp=true format=time "
        f"caps=image/jpeg,framerate={fps}/1,width={width},height={height} "
        "! rtpjpegpay name=pay0 pt=26 )")
    factory.set_shared(True)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    factory.connect("media-configure", configure, frames, float(fps))
    auth = authenticate(factory)
    if auth is not None:
        server.set_auth(auth)
    server.get_mount_points().add_factory(path, factory)
    server.attach(None)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
