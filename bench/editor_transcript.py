"""Print an editor's session with ``maskfix server``, message by message (the transcript in docs/editors.md).

Usage: python bench/editor_transcript.py [FILE]   (default: tests/fixtures/causal_only/before.py)

A minimal JSON-RPC client over stdio plays what an editor does: initialize, open FILE, wait for
the diagnostics, ask for code actions on the first one, apply the quick fix's edits to its own
copy of the text, send them as an incremental change, and wait for the next diagnostics.
Every message is printed as sent or received; only the document text in ``didOpen`` is cut short.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from queue import Queue

ROOT = Path(__file__).resolve().parent.parent
URI = "file:///project/model.py"


class Client:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "maskfix", "server"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.inbox: Queue = Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = 0
            while (line := out.readline().strip()):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not length:
                return
            self.inbox.put(json.loads(out.read(length)))

    def send(self, message: dict, shown: dict | None = None) -> None:
        message = {"jsonrpc": "2.0", **message}
        show(">>>", shown or message)
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method: str, params) -> dict:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        return self.receive(lambda m: m.get("id") == self.next_id and "method" not in m)

    def receive(self, wanted) -> dict:
        while True:
            message = self.inbox.get(timeout=60)
            show("<<<", message)
            if wanted(message):
                return message


def show(arrow: str, message: dict) -> None:
    print(f"{arrow} {json.dumps(message, indent=2)}\n")


def offset(text: str, pos: dict) -> int:
    lines = text.splitlines(True)
    return sum(len(line) for line in lines[:pos["line"]]) + pos["character"]


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "fixtures" / "causal_only" / "before.py"
    text = path.read_text()
    client = Client()
    client.request("initialize", {"processId": None, "rootUri": None, "capabilities": {
        "workspace": {"workspaceEdit": {"documentChanges": True}},
        "textDocument": {"codeAction": {"codeActionLiteralSupport": {
            "codeActionKind": {"valueSet": ["quickfix", "source.fixAll"]}}}}}})
    client.send({"method": "initialized", "params": {}})
    item = {"uri": URI, "languageId": "python", "version": 1, "text": text}
    opened = {"method": "textDocument/didOpen", "params": {"textDocument": item}}
    client.send(opened, shown={**opened, "params": {"textDocument": {**item, "text": text[:60] + "..."}}})
    published = client.receive(lambda m: m.get("method") == "textDocument/publishDiagnostics")
    diagnostic = published["params"]["diagnostics"][0]
    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": URI}, "range": diagnostic["range"],
        "context": {"diagnostics": [diagnostic], "only": ["quickfix"]}})
    edits = actions["result"][0]["edit"]["documentChanges"][0]["edits"]
    last_first = sorted(edits, key=lambda e: (e["range"]["start"]["line"], e["range"]["start"]["character"]),
                        reverse=True)
    for e in last_first:
        text = text[:offset(text, e["range"]["start"])] + e["newText"] + text[offset(text, e["range"]["end"]):]
    client.send({"method": "textDocument/didChange", "params": {
        "textDocument": {"uri": URI, "version": 2},
        "contentChanges": [{"range": e["range"], "text": e["newText"]} for e in last_first]}})
    client.receive(lambda m: m.get("method") == "textDocument/publishDiagnostics")
    client.request("shutdown", None)
    client.send({"method": "exit"})
    client.proc.wait(timeout=30)


if __name__ == "__main__":
    main()
