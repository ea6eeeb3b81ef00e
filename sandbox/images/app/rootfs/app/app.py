"""Stand-in for the chitram app in the sandbox (tests only), on the app's own stack: FastAPI,
SQLAlchemy on DATABASE_URL (postgresql+asyncpg in the stack's env file) and the minio S3 client.

Listens on 0.0.0.0:$PORT (default 8000).
  GET /                   200, a short HTML page
  GET /health             200 {"status":"ok",...} when `SELECT 1` works on DATABASE_URL and a signed
                          S3 round trip works on MINIO_ENDPOINT (create bucket MINIO_BUCKET if
                          needed, PUT, GET and DELETE a small object under a key of its own, so that
                          checks running at the same time, in one container or in two during a
                          release, never read each other's object); otherwise 503 with the database
                          error and/or MinIO's error code (e.g. SignatureDoesNotMatch) in the JSON
                          body.
  PUT /api/objects/KEY    store the body in the bucket (key objects/KEY) and a row (key, sha256,
                          size) in the table sandbox_objects
  GET /api/objects/KEY    the stored body, once checked against the row's sha256 (404: no row;
                          502: the row has no object, or the object differs)
  DELETE /api/objects/KEY remove the row and the object (204; 404: no row)
  GET /api/objects        the rows, as JSON
The objects API writes and reads both halves, PostgreSQL and MinIO, for backup and restore drills.

The database engine is created at import, as in the real app: a DATABASE_URL whose driver is not
installed (retro #2: sqlite+aiosqlite in an image built without dev dependencies) stops the app
at start with ModuleNotFoundError.
"""

import hashlib
import io
import os
import urllib.parse
import uuid

import urllib3
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from minio import Minio
from minio.error import S3Error
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.concurrency import run_in_threadpool

TIMEOUT = float(os.environ.get("SANDBOX_TIMEOUT_SECONDS", "3"))
BUCKET = os.environ.get("MINIO_BUCKET", "chitram")

engine = create_async_engine(os.environ["DATABASE_URL"], pool_pre_ping=True, pool_size=2, max_overflow=4)

TABLE_SQL = text(
    "CREATE TABLE IF NOT EXISTS sandbox_objects (key text PRIMARY KEY, sha256 text NOT NULL, "
    "size integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
)


def storage() -> Minio:
    endpoint = os.environ.get("MINIO_ENDPOINT", "minio:9000")
    secure = os.environ.get("MINIO_SECURE", "").lower() in ("1", "true", "yes")
    if "://" in endpoint:
        url = urllib.parse.urlsplit(endpoint)
        endpoint, secure = url.netloc, url.scheme == "https"
    return Minio(
        endpoint,
        access_key=os.environ.get("MINIO_ACCESS_KEY", ""),
        secret_key=os.environ.get("MINIO_SECRET_KEY", ""),
        secure=secure,
        region=os.environ.get("MINIO_REGION", "us-east-1"),
        # no retries: /health must answer within the container healthcheck's timeout
        http_client=urllib3.PoolManager(timeout=urllib3.Timeout(TIMEOUT), retries=urllib3.Retry(total=0)),
    )


def describe(exc: Exception) -> str:
    if isinstance(exc, S3Error):
        status = getattr(exc.response, "status", None)
        return f"{exc.code}{f' (HTTP {status})' if status else ''}: {exc.message}"
    return f"{type(exc).__name__}: {str(exc).strip()}"


def ensure_bucket(client: Minio) -> None:
    # PUT first: a HEAD error has no body, so bucket_exists would hide MinIO's error code.
    try:
        client.make_bucket(BUCKET)
    except S3Error as exc:
        if exc.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return
        # A key scoped to one Spaces bucket may not create buckets, that one included: the bucket
        # the stack made is there (a HEAD, which such a key may do), or the error stands.
        if exc.code == "AccessDenied" and client.bucket_exists(BUCKET):
            return
        raise


def put_object(key: str, body: bytes) -> None:
    client = storage()
    ensure_bucket(client)
    client.put_object(BUCKET, key, io.BytesIO(body), len(body))


def get_object(key: str) -> bytes:
    response = storage().get_object(BUCKET, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def storage_round_trip() -> None:
    token = uuid.uuid4().hex
    key = f".sandbox-health/{token}"
    put_object(key, token.encode())
    try:
        if get_object(key) != token.encode():
            raise RuntimeError("the object read back differs from what was written")
    finally:
        storage().remove_object(BUCKET, key)


app = FastAPI(title="chitram sandbox app", docs_url=None, redoc_url=None, openapi_url=None)


@app.exception_handler(S3Error)
async def storage_error(_: Request, exc: S3Error) -> JSONResponse:
    return JSONResponse({"detail": f"storage error: {describe(exc)}", "code": exc.code}, status_code=502)


@app.exception_handler(SQLAlchemyError)
async def database_error(_: Request, exc: SQLAlchemyError) -> JSONResponse:
    return JSONResponse({"detail": f"database error: {describe(exc)}"}, status_code=503)


@app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def home() -> str:
    return (
        "<!doctype html>\n<html><head><title>chitram</title></head>"
        "<body><h1>chitram</h1><p>sandbox stand-in for the chitram app</p></body></html>\n"
    )


@app.api_route("/health", methods=["GET", "HEAD"])
async def health() -> JSONResponse:
    result, ok = {"status": "ok", "database": "ok", "storage": "ok"}, True
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure is reported
        ok, result["database"] = False, f"error: {describe(exc)}"
    try:
        await run_in_threadpool(storage_round_trip)
    except Exception as exc:  # noqa: BLE001
        ok, result["storage"] = False, f"error: {describe(exc)}"
    if not ok:
        result["status"] = "error"
    return JSONResponse(result, status_code=200 if ok else 503)


@app.put("/api/objects/{key:path}", status_code=201)
async def store(key: str, request: Request) -> dict:
    body = await request.body()
    await run_in_threadpool(put_object, "objects/" + key, body)
    digest = hashlib.sha256(body).hexdigest()
    async with engine.begin() as conn:
        await conn.execute(TABLE_SQL)
        await conn.execute(
            text(
                "INSERT INTO sandbox_objects (key, sha256, size) VALUES (:key, :sha256, :size) "
                "ON CONFLICT (key) DO UPDATE SET sha256 = EXCLUDED.sha256, size = EXCLUDED.size, "
                "created_at = now()"
            ),
            {"key": key, "sha256": digest, "size": len(body)},
        )
    return {"key": key, "sha256": digest, "size": len(body)}


async def stored_sha256(key: str) -> str | None:
    async with engine.begin() as conn:
        await conn.execute(TABLE_SQL)
        row = (await conn.execute(text("SELECT sha256 FROM sandbox_objects WHERE key = :key"), {"key": key})).first()
    return row[0] if row else None


@app.get("/api/objects/{key:path}")
async def fetch(key: str) -> Response:
    digest = await stored_sha256(key)
    if digest is None:
        return JSONResponse({"detail": f"no object {key!r} in the database"}, status_code=404)
    try:
        data = await run_in_threadpool(get_object, "objects/" + key)
    except S3Error as exc:
        if exc.code != "NoSuchKey":
            raise
        detail = f"object {key!r} is in the database but not in storage"
        return JSONResponse({"detail": detail, "code": exc.code}, status_code=502)
    if hashlib.sha256(data).hexdigest() != digest:
        return JSONResponse({"detail": f"object {key!r} in storage differs from the database record"}, status_code=502)
    return Response(data, media_type="application/octet-stream")


@app.delete("/api/objects/{key:path}", status_code=204)
async def delete(key: str) -> Response:
    async with engine.begin() as conn:
        await conn.execute(TABLE_SQL)
        gone = await conn.execute(text("DELETE FROM sandbox_objects WHERE key = :key"), {"key": key})
    if gone.rowcount == 0:
        return JSONResponse({"detail": f"no object {key!r} in the database"}, status_code=404)
    await run_in_threadpool(storage().remove_object, BUCKET, "objects/" + key)
    return Response(status_code=204)


@app.get("/api/objects")
async def list_objects() -> dict:
    async with engine.begin() as conn:
        await conn.execute(TABLE_SQL)
        rows = await conn.execute(text("SELECT key, sha256, size FROM sandbox_objects ORDER BY key"))
        return {"objects": [{"key": k, "sha256": s, "size": n} for k, s, n in rows]}


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    print(f"chitram sandbox app on 0.0.0.0:{port}; storage {os.environ.get('MINIO_ENDPOINT')} bucket {BUCKET}", flush=True)
    uvicorn.run(app, host="0.0.0.0", port=port, timeout_graceful_shutdown=5)
