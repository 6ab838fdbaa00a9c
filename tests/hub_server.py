"""A loopback stand-in for the Hugging Face Hub, for tests (standard library only).

It speaks the few routes `huggingface_hub` calls to create a repo, commit files, list and download them
(the list is in ENVIRONMENT.md), keeps repos in memory, and gives every commit a new SHA, so that
`push_to_hub`, `upload_folder`/`create_commit`, `snapshot_download` and `from_pretrained(revision=...)` run
for real against it::

    with LoopbackHub() as hub:
        env = {"HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "dummy"}  # set before huggingface_hub is imported
        ...
        hub.fail_next("commit", 500)  # the next commit request answers 500

Files are always committed as regular (inline base64) blobs: the preupload answer is `uploadMode: "regular"`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlsplit

USER = "tester"
_SEG = r"[^/]+"
_REPO = rf"(?P<repo>{_SEG}/{_SEG})"
_API = rf"^/api/models/{_REPO}"
ROUTES = [  # (method, name, pattern)
    ("GET", "whoami", r"^/api/whoami-v2$"),
    ("POST", "create", r"^/api/repos/create$"),
    ("POST", "validate_yaml", r"^/api/validate-yaml$"),
    ("POST", "preupload", rf"{_API}/preupload/(?P<rev>{_SEG})$"),
    ("POST", "commit", rf"{_API}/commit/(?P<rev>{_SEG})$"),
    ("POST", "branch", rf"{_API}/branch/(?P<rev>{_SEG})$"),
    ("GET", "info", rf"{_API}(?:/revision/(?P<rev>{_SEG}))?$"),
    ("GET", "tree", rf"{_API}/tree/(?P<rev>{_SEG})(?:/(?P<path>.+))?$"),
    ("GET", "refs", rf"{_API}/refs$"),
    ("GET", "commits", rf"{_API}/commits/(?P<rev>{_SEG})$"),
    ("GET", "resolve", rf"^/{_REPO}/resolve/(?P<rev>{_SEG})/(?P<path>.+)$"),
]


def git_blob_sha(content: bytes) -> str:
    """The git object id of a file, as the Hub reports it for regular (non-LFS) files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    sha: str
    parent: Optional[str]
    message: str
    files: dict[str, bytes]
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, rev: str) -> Optional[Commit]:
        """A branch name or a (full or 7+ character) commit SHA -> the commit."""
        sha = self.branches.get(rev)
        if sha is None and len(rev) >= 7:
            sha = next((s for s in self.commits if s.startswith(rev)), None)
        return self.commits.get(sha) if sha else None


class HubError(Exception):
    def __init__(self, status: int, message: str, code: Optional[str] = None, body: Optional[dict] = None):
        super().__init__(message)
        self.status, self.code, self.body = status, code, body or {"error": message}


class LoopbackHub:
    """An in-memory Hub on 127.0.0.1 (a free port), served from a daemon thread; a context manager."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for assertions
        self.lock = threading.RLock()
        self._failures: list[tuple[str, Optional[str], int]] = []
        self._counter = 0
        handler = type("Handler", (_Handler,), {"hub": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="loopback-hub", daemon=True)

    def __enter__(self) -> "LoopbackHub":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, route: str, status: int = 500, repo: Optional[str] = None) -> None:
        """Make the next request to `route` (a name in `ROUTES`, e.g. "commit"), for `repo` if given, answer
        `status`."""
        with self.lock:
            self._failures.append((route, repo, status))

    def _pop_failure(self, route: str, repo: Optional[str]) -> Optional[int]:
        for i, (name, only_repo, status) in enumerate(self._failures):
            if name == route and only_repo in (None, repo):
                del self._failures[i]
                return status
        return None

    def files(self, repo_id: str, rev: str = "main") -> dict[str, bytes]:
        """The files of `repo_id` at a branch or commit."""
        return dict(self._commit(repo_id, rev).files)

    # ---- state changes (all under self.lock) ----
    def _repo(self, repo_id: str) -> Repo:
        if repo_id not in self.repos:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return self.repos[repo_id]

    def _commit(self, repo_id: str, rev: str) -> Commit:
        commit = self._repo(repo_id).resolve(rev)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    def _new_commit(self, repo: Repo, branch: str, message: str, files: dict[str, bytes]) -> Commit:
        self._counter += 1
        parent = repo.branches.get(branch)
        digest = hashlib.sha1(f"{repo.repo_id}\0{parent}\0{message}\0{self._counter}".encode())
        for path in sorted(files):
            digest.update(f"{path}\0{git_blob_sha(files[path])}\0".encode())
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        commit = Commit(digest.hexdigest(), parent, message, files, now)
        repo.commits[commit.sha] = commit
        repo.branches[branch] = commit.sha
        return commit

    def create_repo(self, body: dict) -> dict:
        repo_id = f"{body.get('organization') or USER}/{body['name']}"
        url = f"{self.endpoint}/{repo_id}"
        if repo_id in self.repos:
            raise HubError(409, "You already created this model repo", body={"error": "exists", "url": url})
        private = body.get("private", body.get("visibility") == "private") is True
        repo = self.repos[repo_id] = Repo(repo_id, private)
        self._new_commit(repo, "main", "initial commit", {".gitattributes": b"*.safetensors filter=lfs diff=lfs\n"})
        return {"url": url, "name": repo_id}

    def commit(self, repo_id: str, rev: str, lines: list[dict]) -> dict:
        repo = self._repo(repo_id)
        head = self._commit(repo_id, rev)
        if rev not in repo.branches:
            raise HubError(400, f"Can only commit to a branch, got {rev}")
        header = lines[0]["value"] if lines and lines[0].get("key") == "header" else {}
        parent = header.get("parentCommit")
        if parent and not head.sha.startswith(parent):
            raise HubError(412, f"Parent commit {parent} is not the head of {rev}")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: c for p, c in files.items() if not p.startswith(prefix)}
            else:
                raise HubError(400, f"Unsupported commit operation {key!r} (this server takes regular files only)")
        commit = self._new_commit(repo, rev, header.get("summary") or "commit", files)
        return {"commitUrl": f"{self.endpoint}/{repo_id}/commit/{commit.sha}", "commitOid": commit.sha,
                "success": True, "pullRequestUrl": None}


class _Handler(BaseHTTPRequestHandler):
    hub: LoopbackHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # ---- plumbing ----
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip(), 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if not size:
                    return b"".join(chunks)
                chunks.append(chunk)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes = b"", headers: Optional[dict] = None, content_length=None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200, headers: Optional[dict] = None) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._read_body() if method == "POST" else b""
        hub = self.hub
        with hub.lock:
            hub.requests.append((method, url.path))
        for route_method, name, pattern in ROUTES:
            match = re.match(pattern, url.path)
            if match and (route_method == method or (route_method == "GET" and method == "HEAD")):
                break
        else:
            self._json({"error": f"no route for {method} {url.path}"}, 404)
            return
        params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
        try:
            with hub.lock:
                status = hub._pop_failure(name, params.get("repo"))
                if status is not None:
                    raise HubError(status, f"injected failure on {name}")
                getattr(self, f"_route_{name}")(params, body, parse_qs(url.query))
        except HubError as err:
            headers = {"X-Error-Message": str(err)}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._json(err.body, err.status, headers)

    def _check_read(self, repo_id: str) -> Repo:
        repo = self.hub._repo(repo_id)
        if repo.private and not self.headers.get("Authorization"):
            raise HubError(401, f"Repository {repo_id} is private", "RepoNotFound")
        return repo

    def _check_write(self) -> None:
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            raise HubError(401, "Invalid credentials in Authorization header")

    # ---- routes ----
    def _route_whoami(self, params: dict, body: bytes, query: dict) -> None:
        self._check_write()
        self._json({"type": "user", "name": USER, "fullname": "Test User", "orgs": [],
                    "auth": {"accessToken": {"displayName": "dummy", "role": "write"}}})

    def _route_create(self, params: dict, body: bytes, query: dict) -> None:
        self._check_write()
        self._json(self.hub.create_repo(json.loads(body)))

    def _route_validate_yaml(self, params: dict, body: bytes, query: dict) -> None:
        content = json.loads(body).get("content", "")
        if content.startswith("---") and "\n---" not in content[3:]:
            raise HubError(400, "unterminated metadata", body={"errors": [{"message": "unterminated YAML block"}]})
        warnings = [] if content.startswith("---") else [{"message": "empty or missing yaml metadata"}]
        self._json({"errors": [], "warnings": warnings})

    def _route_preupload(self, params: dict, body: bytes, query: dict) -> None:
        self._check_write()
        head = self.hub._commit(params["repo"], params["rev"])
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": git_blob_sha(head.files[f["path"]]) if f["path"] in head.files else None}
            for f in json.loads(body)["files"]
        ]
        self._json({"files": files, "commitOid": head.sha})

    def _route_commit(self, params: dict, body: bytes, query: dict) -> None:
        self._check_write()
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        self._json(self.hub.commit(params["repo"], params["rev"], lines))

    def _route_branch(self, params: dict, body: bytes, query: dict) -> None:
        self._check_write()
        repo = self.hub._repo(params["repo"])
        if params["rev"] in repo.branches:
            raise HubError(409, f"Branch {params['rev']} already exists")
        start = (json.loads(body) if body else {}).get("startingPoint") or "main"
        repo.branches[params["rev"]] = self.hub._commit(params["repo"], start).sha
        self._json({})

    def _route_info(self, params: dict, body: bytes, query: dict) -> None:
        repo = self._check_read(params["repo"])
        commit = self.hub._commit(params["repo"], params.get("rev", "main"))
        self._json({"_id": repo.repo_id, "id": repo.repo_id, "modelId": repo.repo_id, "sha": commit.sha,
                    "private": repo.private, "lastModified": commit.date, "tags": [], "downloads": 0, "likes": 0,
                    "siblings": [{"rfilename": path} for path in sorted(commit.files)]})

    def _route_tree(self, params: dict, body: bytes, query: dict) -> None:
        self._check_read(params["repo"])
        commit = self.hub._commit(params["repo"], params["rev"])
        prefix = params.get("path", "").strip("/")
        prefix = prefix + "/" if prefix else ""
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        entries: dict[str, dict] = {}
        for path, content in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix):].split("/")
            for depth in range(1, len(parts)):  # folders on the way
                folder = prefix + "/".join(parts[:depth])
                if recursive or depth == 1:
                    entries.setdefault(folder, {"type": "directory", "path": folder, "oid": "0" * 40, "size": 0})
            if recursive or len(parts) == 1:
                entries[path] = {"type": "file", "path": path, "oid": git_blob_sha(content), "size": len(content)}
        if prefix and not entries:
            raise HubError(404, f"{prefix} does not exist at {params['rev']}", "EntryNotFound")
        self._json(list(entries.values()))

    def _route_refs(self, params: dict, body: bytes, query: dict) -> None:
        repo = self._check_read(params["repo"])
        branches = [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha}
                    for name, sha in sorted(repo.branches.items())]
        self._json({"branches": branches, "tags": [], "converts": []})

    def _route_commits(self, params: dict, body: bytes, query: dict) -> None:
        repo = self._check_read(params["repo"])
        commit: Optional[Commit] = self.hub._commit(params["repo"], params["rev"])
        history = []
        while commit is not None:
            history.append({"id": commit.sha, "title": commit.message, "message": commit.message,
                            "authors": [{"user": USER}], "date": commit.date})
            commit = repo.commits.get(commit.parent) if commit.parent else None
        self._json(history)

    def _route_resolve(self, params: dict, body: bytes, query: dict) -> None:
        self._check_read(params["repo"])
        commit = self.hub._commit(params["repo"], params["rev"])
        if params["path"] not in commit.files:
            raise HubError(404, f"{params['path']} not found at {params['rev']}", "EntryNotFound")
        content = commit.files[params["path"]]
        headers = {"Content-Type": "application/octet-stream", "ETag": f'"{git_blob_sha(content)}"',
                   "X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) + 1 if match.group(2) else len(content)
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(content)}"
            self._send(206, content[start:end], headers)
        else:
            self._send(200, content, headers)
