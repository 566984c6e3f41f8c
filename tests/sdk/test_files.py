"""The File API as SDK users meet it: google-genai `files.upload / get / list / delete`, then the uploaded
file in `generate_content`; raw-protocol details (offsets, chunk statuses, multipart) with httpx; per-key
isolation, quota, expiry, restart persistence and URL fetching on servers started for each.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import os
import time
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import errors, types

import sdkutil
from conftest import start_server, stop_server

CASE = "caption_square"


def client_for(url: str, key: str = sdkutil.API_KEY) -> genai.Client:
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=url,
            retry_options=types.HttpRetryOptions(attempts=1),
            timeout=sdkutil.REQUEST_TIMEOUT_S * 1000,
        ),
    )


def case_image_and_text(case: dict) -> tuple[Path, str]:
    (message,) = [m for m in case["messages"] if m["role"] == "user"]
    image = next(item for item in message["content"] if item["type"] == "image")
    text = next(item for item in message["content"] if item["type"] == "text")
    return sdkutil.resolve_path(image["path"]), text["text"]


def contents_with_file(case: dict, uploaded) -> list:
    """The case's single user turn, with the uploaded file where the image was (the seed's form)."""
    (message,) = [m for m in case["messages"] if m["role"] == "user"]
    return [uploaded if item["type"] == "image" else item["text"] for item in message["content"]]


def limit(case: dict) -> dict:
    """The reference stops after max_new_tokens; so must the server."""
    return {"max_output_tokens": case["max_new_tokens"]}


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def noise_png(path: Path, side: int) -> bytes:
    """An incompressible PNG of about 3·side² bytes."""
    import PIL.Image

    PIL.Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path, compress_level=0)
    return path.read_bytes()


def client_error(excinfo) -> errors.ClientError:
    err = excinfo.value
    assert isinstance(err, errors.ClientError), type(err)
    return err


# ---------------------------------------------------------------------------------------------
# The SDK flow on the main server
# ---------------------------------------------------------------------------------------------
def test_uploaded_file_answers_like_inline_data(client, expected):
    case = expected[CASE]
    image, _ = case_image_and_text(case)
    uploaded = client.files.upload(file=str(image))
    assert uploaded.state == types.FileState.ACTIVE
    assert uploaded.name.startswith("files/") and uploaded.mime_type == "image/png"
    response = client.models.generate_content(model=sdkutil.SEED_MODEL, contents=contents_with_file(case, uploaded), config=limit(case))
    sdkutil.assert_reference_text(response.text, case)
    assert response.usage_metadata.prompt_token_count == case["prompt_token_count"]
    # The full URI and the bare name both resolve.
    by_name = client.models.generate_content(
        model=sdkutil.SEED_MODEL,
        contents=[types.Part.from_uri(file_uri=uploaded.name, mime_type="image/png") if x is uploaded else x
                  for x in contents_with_file(case, uploaded)],
        config=limit(case),
    )
    sdkutil.assert_reference_text(by_name.text, case)


def test_get_list_delete(client, tmp_path):
    data = (sdkutil.IMAGES_DIR / "yellow_star_84x56.png").read_bytes()
    names = []
    for i in range(3):
        f = client.files.upload(file=str(sdkutil.IMAGES_DIR / "yellow_star_84x56.png"), config={"display_name": f"star {i}"})
        names.append(f.name)
    got = client.files.get(name=names[0])
    assert got.display_name == "star 0"
    assert got.size_bytes == len(data)
    assert got.sha256_hash == sha256_b64(data)
    assert got.state == types.FileState.ACTIVE and got.source == types.FileSource.UPLOADED
    assert got.expiration_time - got.create_time == datetime.timedelta(hours=48)
    assert got.uri.endswith(f"/{names[0]}")

    listed = [f.name for f in client.files.list(config={"page_size": 2})]
    assert set(names) <= set(listed)
    assert listed.index(names[2]) < listed.index(names[0]), "newest first"

    client.files.delete(name=names[1])
    with pytest.raises(errors.ClientError) as ei:
        client.files.get(name=names[1])
    err = client_error(ei)
    assert (err.code, err.status) == (403, "PERMISSION_DENIED")
    assert names[1].removeprefix("files/") in err.message
    assert names[1] not in [f.name for f in client.files.list()]


def test_multi_megabyte_upload_in_several_chunks(client, tmp_path):
    path = tmp_path / "noise.png"
    data = noise_png(path, 2000)  # ~12 MB: two 8 MiB chunks from the SDK
    assert len(data) > 8 * 1024 * 1024
    uploaded = client.files.upload(file=str(path))
    assert uploaded.size_bytes == len(data)
    assert uploaded.sha256_hash == sha256_b64(data)
    assert uploaded.state == types.FileState.ACTIVE


def test_non_image_bytes_fail_and_cannot_be_used(client, tmp_path, expected):
    path = tmp_path / "notes.txt"
    path.write_text("not an image at all\n")
    uploaded = client.files.upload(file=str(path))
    assert uploaded.state == types.FileState.FAILED
    assert uploaded.error is not None and "not a supported image" in uploaded.error.message
    case = expected[CASE]
    with pytest.raises(errors.ClientError) as ei:
        client.models.generate_content(model=sdkutil.SEED_MODEL, contents=contents_with_file(case, uploaded), config=limit(case))
    err = client_error(ei)
    assert (err.code, err.status) == (400, "FAILED_PRECONDITION")


def test_unknown_file_uri_is_permission_denied(client):
    with pytest.raises(errors.ClientError) as ei:
        client.models.generate_content(
            model=sdkutil.SEED_MODEL,
            contents=[types.Part.from_uri(file_uri="files/doesnotexist1", mime_type="image/png"), "Caption."],
        )
    err = client_error(ei)
    assert (err.code, err.status) == (403, "PERMISSION_DENIED")
    assert err.message == "You do not have permission to access the File doesnotexist1 or it may not exist."


# ---------------------------------------------------------------------------------------------
# The resumable protocol on the wire
# ---------------------------------------------------------------------------------------------
def start_upload(http: httpx.Client, size: int, mime: str = "image/png") -> str:
    r = http.post(
        "/upload/v1beta/files",
        headers={
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(size),
            "X-Goog-Upload-Header-Content-Type": mime,
        },
        json={"file": {"display_name": "raw"}},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-goog-upload-status"] == "active"
    url = r.headers["x-goog-upload-url"]
    assert url.startswith(str(http.base_url).rstrip("/") + "/upload/v1beta/files?upload_id=")
    return url


def test_chunks_wrong_offset_and_statuses(http):
    data = (sdkutil.IMAGES_DIR / "blue_circle_112x56.png").read_bytes()
    url = start_upload(http, len(data))
    third = len(data) // 3
    # Chunk requests carry no API key, like the Python SDK's.
    plain = httpx.Client(timeout=30)
    r = plain.post(url, headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"}, content=data[:third])
    assert (r.status_code, r.headers["x-goog-upload-status"]) == (200, "active")
    r = plain.post(url, headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "5"}, content=data[third:])
    sdkutil.assert_google_error(r, 400, "INVALID_ARGUMENT")
    assert r.headers["x-goog-upload-status"] == "active"
    assert r.headers["x-goog-upload-size-received"] == str(third)
    r = plain.post(url, headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": str(third)}, content=data[third : 2 * third])
    assert r.headers["x-goog-upload-status"] == "active"
    r = plain.post(
        url, headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": str(2 * third)}, content=data[2 * third :]
    )
    assert (r.status_code, r.headers["x-goog-upload-status"]) == (200, "final"), r.text
    file = r.json()["file"]
    assert file["sizeBytes"] == str(len(data)) and file["sha256Hash"] == sha256_b64(data)
    assert file["displayName"] == "raw" and file["state"] == "ACTIVE"
    # The session is over: another chunk gets a final error.
    r = plain.post(url, headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"}, content=b"x")
    sdkutil.assert_google_error(r, 404, "NOT_FOUND")
    assert r.headers["x-goog-upload-status"] == "final"


def test_finalize_short_of_the_declared_size_fails(http):
    url = start_upload(http, 1000)
    r = httpx.post(url, headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"}, content=b"\x89PNG" * 10)
    sdkutil.assert_google_error(r, 400, "INVALID_ARGUMENT")
    assert r.headers["x-goog-upload-status"] == "final"


def test_declared_size_over_the_file_limit_is_refused_at_start(http):
    r = http.post(
        "/upload/v1beta/files",
        headers={"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                 "X-Goog-Upload-Header-Content-Length": str(3 * 1024**3)},
    )
    sdkutil.assert_google_error(r, 400, "INVALID_ARGUMENT")


def test_multipart_upload(http):
    data = (sdkutil.IMAGES_DIR / "green_triangle_56x84.png").read_bytes()
    boundary = "glimpse-boundary"
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n"
        '{"file": {"displayName": "tri"}}\r\n'
        f"--{boundary}\r\nContent-Type: image/png\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    r = http.post(
        "/upload/v1beta/files",
        headers={"X-Goog-Upload-Protocol": "multipart", "Content-Type": f"multipart/related; boundary={boundary}"},
        content=body,
    )
    assert r.status_code == 200, r.text
    file = r.json()["file"]
    assert (file["displayName"], file["sizeBytes"], file["state"]) == ("tri", str(len(data)), "ACTIVE")
    assert http.delete(f"/v1beta/{file['name']}").json() == {}


# ---------------------------------------------------------------------------------------------
# Servers with other settings
# ---------------------------------------------------------------------------------------------
def test_api_keys_isolate_files(tmp_path, expected):
    server = start_server(tmp_path, "keys", ["--api-key", "alpha-key", "--api-key", "beta-key"])
    try:
        alpha, beta = client_for(server.url, "alpha-key"), client_for(server.url, "beta-key")
        image, _ = case_image_and_text(expected[CASE])
        uploaded = alpha.files.upload(file=str(image))
        assert alpha.files.get(name=uploaded.name).state == types.FileState.ACTIVE
        for call in (lambda: beta.files.get(name=uploaded.name), lambda: beta.files.delete(name=uploaded.name),
                     lambda: beta.models.generate_content(model=sdkutil.SEED_MODEL, contents=contents_with_file(expected[CASE], uploaded), config=limit(expected[CASE]))):
            with pytest.raises(errors.ClientError) as ei:
                call()
            err = client_error(ei)
            assert (err.code, err.status) == (403, "PERMISSION_DENIED")
        assert list(beta.files.list()) == []
        sdkutil.assert_reference_text(
            alpha.models.generate_content(model=sdkutil.SEED_MODEL, contents=contents_with_file(expected[CASE], uploaded), config=limit(expected[CASE])).text,
            expected[CASE],
        )
        wrong = client_for(server.url, "wrong-key")  # keep a reference: a collected client closes its connection
        with pytest.raises(errors.ClientError) as ei:
            wrong.files.list()
        err = client_error(ei)
        assert (err.code, err.status) == (400, "INVALID_ARGUMENT")
        assert err.message == "API key not valid. Please pass a valid API key."
        r = httpx.get(f"{server.url}/v1beta/models")
        sdkutil.assert_google_error(r, 403, "PERMISSION_DENIED")
        assert httpx.get(f"{server.url}/v1beta/models?key=beta-key").status_code == 200
    finally:
        stop_server(server)


def test_quota_exceeded(tmp_path):
    server = start_server(tmp_path, "quota", ["--project-quota-bytes", "200000"])
    try:
        client = client_for(server.url)
        path = tmp_path / "big.png"
        noise_png(path, 200)  # ~120 kB
        client.files.upload(file=str(path))
        with pytest.raises(errors.ClientError) as ei:
            client.files.upload(file=str(path))
        err = client_error(ei)
        assert (err.code, err.status) == (429, "RESOURCE_EXHAUSTED")
        # Another key is another project with its own quota.
        other = client_for(server.url, "other-key")
        other.files.upload(file=str(path))
    finally:
        stop_server(server)


def test_files_expire(tmp_path, expected):
    server = start_server(tmp_path, "ttl", ["--file-ttl-seconds", "2"])
    try:
        client = client_for(server.url)
        image, _ = case_image_and_text(expected[CASE])
        uploaded = client.files.upload(file=str(image))
        assert (uploaded.expiration_time - uploaded.create_time).total_seconds() == 2
        client.files.get(name=uploaded.name)
        time.sleep(3)
        with pytest.raises(errors.ClientError) as ei:
            client.files.get(name=uploaded.name)
        assert client_error(ei).code == 403
        with pytest.raises(errors.ClientError) as ei:
            client.models.generate_content(model=sdkutil.SEED_MODEL, contents=contents_with_file(expected[CASE], uploaded), config=limit(expected[CASE]))
        assert client_error(ei).code == 403
        # The sweeper removes the blob as well.
        deadline = time.monotonic() + 10
        blobs = tmp_path / "ttl-data" / "blobs"
        while any(p.is_file() for p in blobs.rglob("*")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(p.is_file() for p in blobs.rglob("*"))
    finally:
        stop_server(server)


def test_restart_keeps_active_files_and_unfinished_uploads(tmp_path, expected):
    """Everything lives in the database and the blob store: after a restart the files are there and an
    upload cut off halfway goes on from where it stopped."""
    data_dir = tmp_path / "shared-data"
    server = start_server(tmp_path, "before", ["--data-dir", str(data_dir)])
    image, _ = case_image_and_text(expected[CASE])
    data = image.read_bytes()
    try:
        client = client_for(server.url)
        uploaded = client.files.upload(file=str(image))
        with httpx.Client(base_url=server.url, headers={"x-goog-api-key": sdkutil.API_KEY}, timeout=30) as http:
            url = start_upload(http, len(data))
        half = len(data) // 2
        r = httpx.post(url, headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"}, content=data[:half])
        assert r.headers["x-goog-upload-status"] == "active"
    finally:
        stop_server(server)
    server = start_server(tmp_path, "after", ["--data-dir", str(data_dir)])
    try:
        client = client_for(server.url)
        assert [f.name for f in client.files.list()] == [uploaded.name]
        assert client.files.get(name=uploaded.name).state == types.FileState.ACTIVE
        response = client.models.generate_content(model=sdkutil.SEED_MODEL, contents=contents_with_file(expected[CASE], uploaded), config=limit(expected[CASE]))
        sdkutil.assert_reference_text(response.text, expected[CASE])
        url = server.url + url[url.index("/upload/"):]
        r = httpx.post(url, headers={"X-Goog-Upload-Command": "query"})
        assert r.headers["x-goog-upload-size-received"] == str(half)
        r = httpx.post(url, headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": str(half)}, content=data[half:])
        file = r.json()["file"]
        assert (file["state"], file["sizeBytes"], file["sha256Hash"]) == ("ACTIVE", str(len(data)), sha256_b64(data))
    finally:
        stop_server(server)


def url_contents(case: dict, site: str) -> list:
    (message,) = [m for m in case["messages"] if m["role"] == "user"]
    return [
        types.Part.from_uri(file_uri=f"{site}/{Path(item['path']).name}", mime_type="image/png") if item["type"] == "image" else item["text"]
        for item in message["content"]
    ]


def test_loopback_url_is_refused_by_default(client, expected, image_site):
    with pytest.raises(errors.ClientError) as ei:
        client.models.generate_content(model=sdkutil.SEED_MODEL, contents=url_contents(expected[CASE], image_site), config=limit(expected[CASE]))
    err = client_error(ei)
    assert (err.code, err.status) == (400, "INVALID_ARGUMENT")
    assert "not publicly routable" in err.message
    assert "--fetch-allow" in err.message, "the refusal says how the server admits a network"


def test_allow_listed_url_is_fetched(tmp_path, expected, image_site):
    server = start_server(tmp_path, "fetch", ["--fetch-allow", "127.0.0.0/8"])
    try:
        client = client_for(server.url)
        response = client.models.generate_content(
            model=sdkutil.SEED_MODEL, contents=url_contents(expected[CASE], image_site), config=limit(expected[CASE])
        )
        sdkutil.assert_reference_text(response.text, expected[CASE])
    finally:
        stop_server(server)
