"""Model management: `glimpse pull` against a local server that imitates the Hugging Face hub (download into the
hub cache layout, resume after a dropped connection, clear failures), `glimpse models list`, `--model owner/name`
served from the cache, and `glimpse serve --config FILE`."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from google.genai import errors, types

import sdkutil
from conftest import start_server, stop_server
from hubsim import COMMIT, HubSim

REPO = "glimpse-test/qwen-tiny"
CHUNK = 256 * 1024


def hub_env(hf_home: Path, **extra: str) -> dict[str, str]:
    """The test's environment with its own cache and no hub settings of the developer's (or of test.sh)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HUB_CACHE", "HF_TOKEN")}
    env["HF_HOME"] = str(hf_home)
    env.update(extra)
    return env


def glimpse(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(sdkutil.GLIMPSE_BIN), *args], env=env, cwd=sdkutil.ROOT, capture_output=True, text=True, timeout=120
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def hub():
    with HubSim(sdkutil.MODEL_DIR, REPO) as sim:
        yield sim


def test_pull_fills_the_hub_cache_and_serve_uses_it(hub, tmp_path, expected):
    env = hub_env(tmp_path / "hf")
    done = glimpse("pull", REPO, "--endpoint", hub.url, env=env)
    assert done.returncode == 0, done.stderr
    snapshot = Path(done.stdout.strip().splitlines()[-1])
    cache = tmp_path / "hf" / "hub" / "models--glimpse-test--qwen-tiny"
    assert snapshot == cache / "snapshots" / COMMIT
    assert (cache / "refs" / "main").read_text() == COMMIT
    assert sorted(p.name for p in snapshot.iterdir()) == hub.files
    for name in hub.files:
        assert sha256(snapshot / name) == sha256(sdkutil.MODEL_DIR / name), name
    assert f"{REPO} is ready (qwen2_5_vl)" in done.stderr

    listed = glimpse("models", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(REPO))
    assert "qwen2_5_vl" in row and str(snapshot) in row

    # A second pull finds every file complete and downloads nothing.
    before = len(hub.requests)
    again = glimpse("pull", REPO, "--endpoint", hub.url, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("already complete") == len(hub.files)
    assert hub.requests[before:] == []

    # The cached model serves by its hub id, offline, under the repository's name.
    server = start_server(tmp_path, "from-cache", ["--model", REPO], env=hub_env(tmp_path / "hf", HF_HUB_OFFLINE="1"))
    try:
        client = sdkutil.make_client(server.url)
        case = expected["caption_square"]
        response = client.models.generate_content(
            model="qwen-tiny", contents=sdkutil.sdk_contents(case), config=types.GenerateContentConfig(max_output_tokens=case["max_new_tokens"])
        )
        assert response.model_version == "qwen-tiny"
        sdkutil.assert_reference_text(response.text, case)
    finally:
        stop_server(server)


def test_a_processor_only_pull_leaves_the_weights_on_the_hub(hub, tmp_path):
    """For a model an upstream engine runs: configs, tokenizer and chat template, no weights."""
    env = hub_env(tmp_path / "hf")
    done = glimpse("pull", REPO, "--processor-only", "--endpoint", hub.url, env=env)
    assert done.returncode == 0, done.stderr
    snapshot = Path(done.stdout.strip().splitlines()[-1])
    assert sorted(p.name for p in snapshot.iterdir()) == [f for f in hub.files if not f.endswith(".safetensors")]
    assert not any(file.endswith(".safetensors") for file, _ in hub.requests)
    assert "the processor of glimpse-test/qwen-tiny is ready (qwen2_5_vl)" in done.stderr


def test_an_interrupted_pull_resumes_where_it_stopped(hub, tmp_path):
    env = hub_env(tmp_path / "hf")
    weights = "model.safetensors"
    size = (sdkutil.MODEL_DIR / weights).stat().st_size
    assert size > 3 * CHUNK, "the fixture's weights must span several ranges"
    args = ["pull", REPO, "--endpoint", hub.url, "--chunk-bytes", str(CHUNK), "--connections", "8"]

    hub.cut_from(weights, 2 * CHUNK)
    first = glimpse(*args, env=env)
    assert first.returncode != 0
    assert f"downloading {weights}" in first.stderr and "run the same command again to resume" in first.stderr
    # Files listed before the weights are complete; the weights are not in the snapshot yet.
    snapshot = tmp_path / "hf" / "hub" / "models--glimpse-test--qwen-tiny" / "snapshots" / COMMIT
    assert (snapshot / "config.json").is_file() and not (snapshot / weights).exists()

    hub.heal()
    before = len(hub.requests)
    second = glimpse(*args, env=env)
    assert second.returncode == 0, second.stderr
    resumed = [r for f, r in hub.requests[before:] if f == weights and r != "bytes=0-0"]
    # Only the ranges from the cut on are fetched again.
    starts = sorted(int(r.split("=")[1].split("-")[0]) for r in resumed)
    assert starts and starts[0] == 2 * CHUNK, resumed
    assert sha256(snapshot / weights) == sha256(sdkutil.MODEL_DIR / weights)
    assert "config.json: already complete" in second.stderr


def test_pull_failures_are_clear_and_fast(hub, tmp_path):
    env = hub_env(tmp_path / "hf")
    unknown = glimpse("pull", "glimpse-test/absent", "--endpoint", hub.url, env=env)
    assert unknown.returncode != 0 and "glimpse-test/absent was not found" in unknown.stderr

    # Nothing listens on a port that was just closed: the hub is unreachable.
    dead = f"http://127.0.0.1:{_closed_port()}"
    unreachable = glimpse("pull", REPO, "--endpoint", dead, env=env)
    assert unreachable.returncode != 0 and "cannot reach the Hugging Face hub" in unreachable.stderr

    offline = glimpse("pull", REPO, "--endpoint", hub.url, env=hub_env(tmp_path / "hf", HF_HUB_OFFLINE="1"))
    assert offline.returncode != 0 and "HF_HUB_OFFLINE is set" in offline.stderr
    assert hub.requests == []

    missing = glimpse("serve", "--model", "glimpse-test/absent", "--port", "0", env=env)
    assert missing.returncode != 0 and "glimpse pull glimpse-test/absent" in missing.stderr

    empty = glimpse("models", "list", env=env)
    assert empty.returncode == 0 and "no models in the Hugging Face cache" in empty.stdout


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_from_a_config_file(tmp_path, expected):
    """Two models from one TOML file (a folder relative to the file, per-model aliases and output limit), routed
    by name and alias; names nobody configured are 404 NOT_FOUND."""
    model_link = tmp_path / "models" / "tiny"
    model_link.parent.mkdir()
    model_link.symlink_to(sdkutil.MODEL_DIR)
    config = tmp_path / "glimpse.toml"
    config.write_text(
        '[[model]]\nname = "fast"\nmodel = "models/tiny"\naliases = ["gemini-2.0-flash"]\nmax_output_tokens = 4\n\n'
        f'[[model]]\nname = "careful"\nmodel = "{sdkutil.MODEL_DIR}"\naliases = ["gemini-3-flash-preview"]\n'
    )
    server = start_server(tmp_path, "config", ["--config", str(config)])
    try:
        client = sdkutil.make_client(server.url)
        names = sorted(m.name for m in client.models.list())
        assert names == ["models/careful", "models/fast", "models/gemini-2.0-flash", "models/gemini-3-flash-preview"]
        assert client.models.get(model="gemini-2.0-flash").output_token_limit == 4
        case = expected["caption_square"]
        answer = client.models.generate_content(
            model="gemini-3-flash-preview", contents=sdkutil.sdk_contents(case),
            config=types.GenerateContentConfig(max_output_tokens=case["max_new_tokens"]),
        )  # fmt: skip
        assert answer.model_version == "careful"
        sdkutil.assert_reference_text(answer.text, case)
        short = client.models.generate_content(model="gemini-2.0-flash", contents=sdkutil.sdk_contents(case))
        assert short.model_version == "fast" and short.usage_metadata.candidates_token_count <= 4
        with pytest.raises(errors.ClientError) as ei:
            client.models.generate_content(model="gemini-1.5-pro", contents="hi")
        assert (ei.value.code, ei.value.status) == (404, "NOT_FOUND")
    finally:
        stop_server(server)


def test_config_mistakes_stop_the_server_with_the_reason(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[[model]]\nmodel = "x"\nquantisation = "q4k"\n')
    done = glimpse("serve", "--config", str(config), "--port", "0", env=hub_env(tmp_path / "hf"))
    assert done.returncode != 0 and "quantisation" in done.stderr and str(config) in done.stderr
