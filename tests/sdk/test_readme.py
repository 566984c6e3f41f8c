"""The README's examples, run as a user would run them: every `bash` and `python` block is either run here (against
a server this test starts, whose address replaces the README's 127.0.0.1:8080, in a folder where `fixtures/` is
the repository's) or listed with the reason it is not. A block the README gains fails
`test_every_block_is_run_or_explained` until it is added to one of the two, so a broken example fails CI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sdkutil
import services
from conftest import start_server, stop_server

README = sdkutil.REPO_ROOT / "README.md"
README_URL = "http://127.0.0.1:8080"

# Blocks not run, by their first line, and why.
NOT_RUN = {
    "# 1. One database and one bucket": "needs sudo, a PostgreSQL role and a cloud bucket; tests/sdk/test_replicas.py "
    "runs replicas on a throwaway PostgreSQL and moto's S3 instead",
    "target/debug/glimpse serve --model shapes": "serves until stopped and evaluates for 3-8 minutes; "
    "tests/sdk/test_shapes.py checks the model's answers",
}


def blocks() -> list[tuple[str, str]]:
    """(language, code) of every bash and python block, in order."""
    found = re.findall(r"^```(bash|python)\n(.*?)^```$", README.read_text(), flags=re.S | re.M)
    return [(lang, code) for lang, code in found]


def first_line(code: str) -> str:
    return code.strip().splitlines()[0]


def runs(prefix: str) -> str:
    """The one block that starts with `prefix` (so the test notices when it goes)."""
    matching = [code for _, code in blocks() if first_line(code).startswith(prefix)]
    assert len(matching) == 1, f"README blocks starting with {prefix!r}: {len(matching)}"
    return matching[0]


RUN = [
    "scripts/serve.sh   # main job",
    "from google import genai",
    "# The request body goes through a file",
    "import base64, json, time",
]


def test_every_block_is_run_or_explained():
    for lang, code in blocks():
        line = first_line(code)
        assert any(line.startswith(p) for p in RUN) or any(line.startswith(p) for p in NOT_RUN), (
            f"a README {lang} block that this test neither runs nor explains: {line!r}"
        )


@pytest.fixture(scope="module")
def toolkit(tmp_path_factory):
    """The README's server: `glimpse serve` with no model (the toolkit). Cached contents may be as small as one
    photo's 260 toolkit tokens here (`--cache-min-tokens`, which the README names), so the caching example runs."""
    server = start_server(tmp_path_factory.mktemp("readme"), "readme", ["--cache-min-tokens", "256"], fixture_model=False)
    yield server
    stop_server(server)


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A folder where the README's relative paths (`fixtures/photos/…`) resolve and its files (request.json) land."""
    (tmp_path / "fixtures").symlink_to(sdkutil.ROOT / "fixtures")
    return tmp_path


def run_block(lang: str, code: str, server_url: str, cwd: Path) -> str:
    code = code.replace(README_URL, server_url)
    command = [sys.executable, "-c", code] if lang == "python" else ["bash", "-euo", "pipefail", "-c", code]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{lang} block failed:\n{code}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_detection_snippet(toolkit, workdir):
    out = run_block("python", runs("from google import genai"), toolkit.url, workdir)
    assert '"box_2d"' in out and '"label":"dog"' in out and "prompt_token_count" in out, out


def test_the_curl_example(toolkit, workdir):
    out = run_block("bash", runs("# The request body goes through a file"), toolkit.url, workdir)
    answer = json.loads(out)
    assert answer["candidates"][0]["content"]["parts"][0]["text"].startswith("There are"), answer


def test_the_batch_and_cache_example(toolkit, workdir):
    out = run_block("python", runs("import base64, json, time"), toolkit.url, workdir)
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[0].startswith("photo-1 [") and '"label":"dog"' in lines[0], out
    result = json.loads(lines[1])
    assert result["key"] == "photo-2" and "bicycle" in json.dumps(result["response"]), out
    assert len(lines) == 3 and "dog" in lines[2], out


def test_the_main_job_prints_what_the_readme_shows(tmp_path):
    """`scripts/serve.sh` (the first block): the detections it prints first are the README's, and it then serves
    the API, saying where the playground is. Run on a free port (GLIMPSE_PORT) and stopped once it serves."""
    runs("scripts/serve.sh   # main job")
    readme = README.read_text()
    shown = re.search(r"first prints the built-in toolkit's Gemini-format detections.*?\n```\n(.*?)\n```", readme, flags=re.S)
    assert shown, "the README shows what serve.sh prints first"
    port = services.free_port()
    env = {**os.environ, "GLIMPSE_PORT": str(port), "GLIMPSE_DATA_DIR": str(tmp_path / "data")}
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["scripts/serve.sh"], cwd=sdkutil.ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while "playground at" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        printed = log.read_text()
        answer = next(line for line in printed.splitlines() if line.startswith("[{"))
        # The same objects, each box within 2/1000 of the README's (another CPU's SIMD may round differently).
        expected, got = json.loads(shown.group(1)), json.loads(answer)
        assert [item["label"] for item in got] == [item["label"] for item in expected], (answer, shown.group(1))
        for item, want in zip(got, expected):
            assert all(abs(a - b) <= 2 for a, b in zip(item["box_2d"], want["box_2d"])), (answer, shown.group(1))
        assert f"playground at http://127.0.0.1:{port}/" in printed
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
