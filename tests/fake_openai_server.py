"""A real local HTTP server speaking the chat-completions protocol, for backend tests.

Modes: ok (numbered list of colour swaps of the caption), flaky (HTTP 500 on every first
try of a request), garbage (200 with a non-JSON body), slow (answers after 5 s), json
(structured answer). Hostile ones: auth (401 whose body quotes the Authorization header),
echo (200 whose answer quotes it), trickle (a byte of a valid answer every 0.5 s), huge
(300 MB body), hang (never answers; prints `request` on stdout for each one it holds).
A judge prompt (prompts/judge.txt: "Stated edit (type): <<<from>>> -> <<<to>>>") is answered by
the edit's `to`: "square" gets a no with a reason, "green" an answer that is neither yes nor no,
anything else "Yes."; a judge request that is not greedy (temperature 0) is refused (400), and
mode judgedown answers every judge request 503 while rewriting as `ok` does.
Prints its port on stdout, then serves until killed.
"""
import json
import re
import sys
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
SEEN: Counter = Counter()
SWAP = {"red": "blue", "blue": "green", "green": "red", "circle": "square", "square": "circle"}
JUDGE = {"square": "**No** - a square is not what the photo shows", "green": "Perhaps; hard to say."}


def rewrites(caption: str) -> list[str]:
    words = caption.split()
    out = []
    for i, w in enumerate(words):
        if w in SWAP:
            out.append(" ".join(words[:i] + [SWAP[w]] + words[i + 1:]))
    return out + [caption, "a completely different sentence about a boat on a lake"]


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        try:
            self._answer()
        except (BrokenPipeError, ConnectionResetError):
            pass                              # the client gave up on a hostile answer: as it should

    def _answer(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/chat/completions", self.path
        prompt = body["messages"][-1]["content"]
        m = re.search(r"<<<(.*?)>>>", prompt, re.S)
        caption = m.group(1) if m else prompt
        SEEN[(caption, body.get("seed"))] += 1
        if MODE == "auth":
            return self._send(401, json.dumps({"error": f"bad key: {self.headers['Authorization']}"}).encode())
        if MODE == "hang":
            sys.stdout.write("request\n")
            sys.stdout.flush()
            time.sleep(3600)
        if MODE == "huge":
            return self._send(200, None, length=300 << 20)
        if MODE == "flaky" and SEEN[(caption, body.get("seed"))] == 1:
            return self._send(500, b'{"error": "overloaded"}')
        if MODE == "garbage":
            return self._send(200, b"<html>oops</html>")
        if MODE == "slow":
            time.sleep(5)
        stated = re.search(r"Stated edit \((.*?)\): <<<(.*?)>>> -> <<<(.*?)>>>", prompt)
        if stated and (MODE == "judgedown" or body.get("temperature") != 0):
            return self._send(503 if MODE == "judgedown" else 400, b'{"error": "no"}')
        rws = rewrites(caption)
        if stated:
            content = JUDGE.get(stated.group(3), "Yes.")
        elif body.get("response_format"):
            content = json.dumps({"rewrites": [{"text": r, "type": "color", "from": "", "to": ""} for r in rws]})
        else:
            content = "Sure! Here are the rewrites:\n" + "\n".join(f"{i + 1}. {r}" for i, r in enumerate(rws))
        if MODE == "echo":
            content += f"\n{len(rws) + 1}. a red car with {self.headers['Authorization']}"
        resp = {"id": "x", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(content.split())}}
        if MODE == "trickle":
            return self._trickle(json.dumps(resp).encode())
        self._send(200, json.dumps(resp).encode())

    def _send(self, code, data, length=None):
        """`data`, or `length` zero bytes sent a MiB at a time."""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data) if data is not None else length))
        self.end_headers()
        if data is not None:
            self.wfile.write(data)
            return
        for _ in range(length >> 20):
            self.wfile.write(bytes(1 << 20))

    def _trickle(self, data):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for b in data:
            self.wfile.write(bytes([b]))
            self.wfile.flush()
            time.sleep(0.5)


if __name__ == "__main__":
    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    print(srv.server_address[1], flush=True)
    srv.serve_forever()
