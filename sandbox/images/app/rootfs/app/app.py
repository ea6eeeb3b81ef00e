#!/usr/bin/env python3
"""Stand-in for the chitram app in the sandbox (tests only).

Listens on 0.0.0.0:$PORT (default 8000).
  GET /          200, a short HTML page
  GET /health    200 {"status":"ok",...} when `SELECT 1` works on DATABASE_URL and a signed S3
                 round trip works on MINIO_ENDPOINT (create bucket MINIO_BUCKET if needed, PUT, GET
                 and DELETE a small object under a key of its own, so that checks running at the
                 same time, in one container or two during a release, never read each other's
                 object); otherwise 503 with the database error and/or the S3 error
                 code (e.g. SignatureDoesNotMatch) in the JSON body.
  PUT /api/objects/KEY   store the body in the bucket (key objects/KEY) and a row in PostgreSQL
  GET /api/objects/KEY   the stored body, after checking it against the row's sha256
  GET /api/objects       the rows, as JSON
The objects API lets host tests check that a backup + restore brings back both halves.
DATABASE_URL may use a driver suffix (postgresql+asyncpg://...): it is dropped.
S3 requests are signed with AWS Signature V4 by hand (no botocore: it is 80 MB).
"""
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import sys
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

TIMEOUT = float(os.environ.get("SANDBOX_TIMEOUT_SECONDS", "3"))


def database_dsn():
    url = os.environ.get("DATABASE_URL", "")
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)


class StorageError(Exception):
    def __init__(self, code, status=None, message=""):
        super().__init__(code)
        self.code, self.status, self.message = code, status, message

    def describe(self):
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{self.code}{status}: {self.message}".rstrip(": ")


class S3:
    def __init__(self):
        endpoint = os.environ.get("MINIO_ENDPOINT", "minio:9000")
        secure = os.environ.get("MINIO_SECURE", "").lower() in ("1", "true", "yes")
        if "://" in endpoint:
            u = urllib.parse.urlsplit(endpoint)
            secure, endpoint = u.scheme == "https", u.netloc
        self.host, self.secure = endpoint.rstrip("/"), secure
        self.access_key = os.environ.get("MINIO_ACCESS_KEY", "")
        self.secret_key = os.environ.get("MINIO_SECRET_KEY", "")
        self.region = os.environ.get("MINIO_REGION", "us-east-1")
        self.bucket = os.environ.get("MINIO_BUCKET", "chitram")

    def request(self, method, path, body=b"", query=None, content_type=None):
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        payload_hash = hashlib.sha256(body).hexdigest()
        uri = urllib.parse.quote(path, safe="/~")
        pairs = sorted((urllib.parse.quote(k, safe="~"), urllib.parse.quote(v, safe="~"))
                       for k, v in (query or {}).items())
        canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
        headers = {"host": self.host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
        if content_type:
            headers["content-type"] = content_type
        signed = ";".join(sorted(headers))
        canonical_headers = "".join(f"{k}:{headers[k].strip()}\n" for k in sorted(headers))
        canonical_request = "\n".join([method, uri, canonical_query, canonical_headers, signed, payload_hash])
        scope = f"{date}/{self.region}/s3/aws4_request"
        string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                                    hashlib.sha256(canonical_request.encode()).hexdigest()])
        key = ("AWS4" + self.secret_key).encode()
        for part in (date, self.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
        conn_cls = http.client.HTTPSConnection if self.secure else http.client.HTTPConnection
        conn = conn_cls(self.host, timeout=TIMEOUT)
        try:
            conn.request(method, uri + ("?" + canonical_query if canonical_query else ""), body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except OSError as exc:
            raise StorageError("ConnectionError", None, f"{self.host}: {exc}") from exc
        finally:
            conn.close()

    @staticmethod
    def error(status, data):
        text = data.decode("utf-8", "replace")
        code = re.search(r"<Code>(.*?)</Code>", text)
        message = re.search(r"<Message>(.*?)</Message>", text)
        return StorageError(code.group(1) if code else f"HTTP{status}", status, message.group(1) if message else "")

    def ensure_bucket(self):
        status, data = self.request("PUT", f"/{self.bucket}")
        if status != 200:
            err = self.error(status, data)
            if err.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise err

    def put(self, key, body, content_type="application/octet-stream"):
        status, data = self.request("PUT", f"/{self.bucket}/{key}", body, content_type=content_type)
        if status != 200:
            raise self.error(status, data)

    def get(self, key):
        status, data = self.request("GET", f"/{self.bucket}/{key}")
        if status != 200:
            raise self.error(status, data)
        return data

    def delete(self, key):
        status, data = self.request("DELETE", f"/{self.bucket}/{key}")
        if status not in (200, 204):
            raise self.error(status, data)


def db_connect():
    return psycopg2.connect(database_dsn(), connect_timeout=int(TIMEOUT))


def check_database():
    conn = db_connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
    finally:
        conn.close()


def check_storage():
    s3 = S3()
    s3.ensure_bucket()
    token = uuid.uuid4().hex
    key = f".sandbox-health/{token}"
    s3.put(key, token.encode(), "text/plain")
    try:
        if s3.get(key) != token.encode():
            raise StorageError("ContentMismatch", None, "object read back differs from what was written")
    finally:
        s3.delete(key)


TABLE_SQL = """CREATE TABLE IF NOT EXISTS sandbox_objects (
  key text PRIMARY KEY, sha256 text NOT NULL, size integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now())"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chitram-sandbox"

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def reply(self, status, body, content_type="application/json"):
        if not isinstance(body, bytes):
            body = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/":
            self.reply(200, b"<!doctype html>\n<html><head><title>chitram</title></head>"
                            b"<body><h1>chitram</h1><p>sandbox stand-in for the chitram app</p></body></html>\n",
                       "text/html; charset=utf-8")
        elif path == "/health":
            self.health()
        elif path == "/api/objects":
            self.with_errors(self.list_objects)
        elif path.startswith("/api/objects/"):
            self.with_errors(lambda: self.get_object(urllib.parse.unquote(path[len("/api/objects/"):])))
        else:
            self.reply(404, {"detail": "Not Found"})

    def do_PUT(self):
        path = urllib.parse.urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path.startswith("/api/objects/") and len(path) > len("/api/objects/"):
            self.with_errors(lambda: self.put_object(urllib.parse.unquote(path[len("/api/objects/"):]), body))
        else:
            self.reply(404, {"detail": "Not Found"})

    def health(self):
        result, ok = {"status": "ok", "database": "ok", "storage": "ok"}, True
        try:
            check_database()
        except Exception as exc:  # noqa: BLE001 - any failure is reported
            ok, result["database"] = False, f"error: {type(exc).__name__}: {str(exc).strip()}"
        try:
            check_storage()
        except StorageError as exc:
            ok, result["storage"] = False, f"error: {exc.describe()}"
        except Exception as exc:  # noqa: BLE001
            ok, result["storage"] = False, f"error: {type(exc).__name__}: {exc}"
        if not ok:
            result["status"] = "error"
        self.reply(200 if ok else 503, result)

    def with_errors(self, fn):
        try:
            fn()
        except StorageError as exc:
            self.reply(502, {"detail": f"storage error: {exc.describe()}", "code": exc.code})
        except psycopg2.Error as exc:
            self.reply(503, {"detail": f"database error: {str(exc).strip()}"})

    def put_object(self, key, body):
        S3().ensure_bucket()
        S3().put("objects/" + key, body)
        digest = hashlib.sha256(body).hexdigest()
        conn = db_connect()
        try:
            with conn, conn.cursor() as cur:
                cur.execute(TABLE_SQL)
                cur.execute("INSERT INTO sandbox_objects (key, sha256, size) VALUES (%s, %s, %s) "
                            "ON CONFLICT (key) DO UPDATE SET sha256 = EXCLUDED.sha256, size = EXCLUDED.size, "
                            "created_at = now()", (key, digest, len(body)))
        finally:
            conn.close()
        self.reply(201, {"key": key, "sha256": digest, "size": len(body)})

    def get_object(self, key):
        conn = db_connect()
        try:
            with conn, conn.cursor() as cur:
                cur.execute(TABLE_SQL)
                cur.execute("SELECT sha256 FROM sandbox_objects WHERE key = %s", (key,))
                row = cur.fetchone()
        finally:
            conn.close()
        if row is None:
            self.reply(404, {"detail": f"no object {key!r} in the database"})
            return
        try:
            data = S3().get("objects/" + key)
        except StorageError as exc:
            if exc.code == "NoSuchKey":
                self.reply(502, {"detail": f"object {key!r} is in the database but not in storage", "code": exc.code})
                return
            raise
        if hashlib.sha256(data).hexdigest() != row[0]:
            self.reply(502, {"detail": f"object {key!r} in storage differs from the database record"})
            return
        self.reply(200, data, "application/octet-stream")

    def list_objects(self):
        conn = db_connect()
        try:
            with conn, conn.cursor() as cur:
                cur.execute(TABLE_SQL)
                cur.execute("SELECT key, sha256, size FROM sandbox_objects ORDER BY key")
                rows = [{"key": k, "sha256": s, "size": n} for k, s, n in cur.fetchall()]
        finally:
            conn.close()
        self.reply(200, {"objects": rows})


def main():
    port = int(os.environ.get("PORT", "8000"))
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    stop = lambda *_: threading.Thread(target=server.shutdown, daemon=True).start()  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    s3 = S3()
    print(f"chitram sandbox app on 0.0.0.0:{port}; storage {s3.host} bucket {s3.bucket}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
