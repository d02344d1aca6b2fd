"""A minimal DREAMoR backend client written from docs/protocol.md alone: pyzmq and the standard library.

    python docs/protocol_client.py CONNECTION_FILE [REST_JOINTS_JSON]   # hello, then refine a 2 s standing clip

(REST_JOINTS_JSON: a file with "rest_joints_m", 22 x 3 metres; default the SMPL neutral body in backend/dreamor/body.)

It does not import ``dreamor``: it is the proof that the documented wire is enough to talk to the
backend (tests/server/test_independent_client.py runs it against the real server).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import sys
import uuid
from array import array

import zmq

PROTOCOL = 1
_CODES = {"<f8": "d", "<f4": "f", "|b1": "B", "|u1": "B", "<i4": "i", "<i8": "q"}


class WireClient:
    """One DEALER connection to the backend named by a connection file."""

    def __init__(self, connection_file: str, timeout_s: float = 10.0):
        with open(connection_file, encoding="utf-8") as fh:
            info = json.load(fh)
        assert info["signature_scheme"] == "hmac-sha256" and info["protocol"] == PROTOCOL
        self.key = info["key"].encode("utf-8")  # the key string's bytes, as Jupyter signs
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1000))
        self.sock.connect(f"{info['transport']}://{info['ip']}:{info['port']}")

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()

    # -- the envelope
    def send(self, msg_type: str, content: dict | None = None, buffers: dict | None = None,
             job_id: str | None = None, key: bytes | None = None) -> str:
        """Send a request; buffers: name -> (dtype, shape, flat list of numbers). Returns its msg_id."""
        specs, frames = [], []
        for name, (dtype, shape, values) in (buffers or {}).items():
            specs.append({"name": name, "dtype": dtype, "shape": list(shape)})
            frames.append(array(_CODES[dtype], values).tobytes())  # little-endian on x86/ARM hosts
        msg_id = uuid.uuid4().hex
        header = json.dumps({"protocol": PROTOCOL, "type": msg_type, "msg_id": msg_id, "job_id": job_id,
                             "reply_to": None, "content": content or {}, "buffers": specs}).encode("utf-8")
        mac = hmac.new(self.key if key is None else key, header, hashlib.sha256)
        for f in frames:
            mac.update(f)
        self.sock.send_multipart([mac.hexdigest().encode("ascii"), header, *frames])
        return msg_id

    def receive(self) -> tuple[dict, dict]:
        """The next message -> (header, buffers: name -> flat list); the signature is checked."""
        signature, header, *frames = self.sock.recv_multipart()
        mac = hmac.new(self.key, header, hashlib.sha256)
        for f in frames:
            mac.update(f)
        if not hmac.compare_digest(signature, mac.hexdigest().encode("ascii")):
            raise ValueError("a reply with a bad signature")
        head = json.loads(header)
        bufs = {}
        for spec, f in zip(head["buffers"], frames):
            a = array(_CODES[spec["dtype"]])
            a.frombytes(f)
            bufs[spec["name"]] = a.tolist()
        return head, bufs

    # -- requests
    def hello(self) -> dict:
        self.send("hello", {"protocol": PROTOCOL, "client": "protocol_client.py"})
        return self.receive()[0]

    def submit(self, frames: int, fps: float, rest_joints: list[float], options: dict | None = None) -> str:
        """Submit a standing clip of ``frames`` frames (zero pose, pelvis still); returns the job id."""
        zeros = lambda n: [0.0] * (frames * n)  # noqa: E731
        buffers = {"trans": ("<f8", (frames, 3), zeros(3)), "root_orient": ("<f8", (frames, 3), zeros(3)),
                   "pose_body": ("<f8", (frames, 63), zeros(63)), "rest_joints": ("<f8", (22, 3), rest_joints)}
        self.send("submit", {"fps": fps, "options": options or {}}, buffers)
        head, _ = self.receive()
        if head["type"] != "accepted":
            raise RuntimeError(f"{head['content']['code']}: {head['content']['message']}")
        return head["content"]["job_id"]


def main(path: str, rest_file: str) -> int:
    client = WireClient(path, timeout_s=120)
    try:
        welcome = client.hello()
        print(f"{welcome['type']}: backend {welcome['content']['version']}, devices {welcome['content']['devices']}")
        with open(rest_file, encoding="utf-8") as fh:
            rest = [v for joint in json.load(fh)["rest_joints_m"] for v in joint]
        job = client.submit(60, 30.0, rest, {"preset": "fast"})
        print(f"job {job} accepted")
        while True:
            head, bufs = client.receive()
            if head["type"] == "progress":
                print(f"progress {head['content']['fraction']:.0%}")
            elif head["type"] == "result":
                print(f"result: {head['content']['frames']} frames, {len(bufs['joints']) // 66} frames of joints")
                return 0
            elif head["type"] == "error":
                print(f"error {head['content']['code']}: {head['content']['message']}", file=sys.stderr)
                return 1
    finally:
        client.close()


if __name__ == "__main__":
    default_rest = __file__.rsplit("/", 2)[0] + "/backend/dreamor/body/smpl22_rest_joints.json"
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else default_rest))
