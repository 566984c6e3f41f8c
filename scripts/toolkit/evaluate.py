"""The toolkit's accuracy on public, annotated images that PyPI packages carry (none chosen or tuned by this project):

* detection: the three PASCAL VOC 2011 photographs of labelme's examples (PyPI `labelme` 7.9.1, GPL-3.0; also
  Debian `labelme-examples`), 12 annotated objects in 6 classes, in COCO format. VOC's 20 classes are COCO
  classes under other names; detections of COCO classes outside VOC's are not scored (nobody annotated them).
  Recall and precision at IoU 0.5, one match per object, best score first.
* reading, printed lines: the 70 scanned lines of UW-III in calamari-ocr's test data (PyPI `calamari-ocr` 2.3.0,
  GPL-3.0), one transcription each.
* reading, printed pages: the four page scans of a 1595 Latin print in the same package (PAGE XML, 285 lines,
  the human transcription `TextEquiv index="0"`; two columns, marginal notes, long s).
* reading, handwriting: the handwritten Spanish manuscript page in kraken's tests (PyPI `kraken` 4.3.13,
  Apache-2.0; PAGE XML, 44 lines).

Character accuracy is 1 − (edit distance) / (ground-truth characters), summed over the set, whitespace runs
collapsed. On pages each read line is given to the ground-truth line its box overlaps most (by at least 30% of the
read box or half the line's box; read boxes are PP-OCR's, grown around the text) and a line's reads are joined left
to right; a read that overlaps a line less counts as inserted characters, one that overlaps no transcribed line is
not scored (the pages have parts nobody transcribed), ground-truth lines given nothing count as deleted. So the score
does not depend on the order columns are read in.

Usage: evaluate.py fetch                     downloads (sha256 checked) into ~/.cache/glimpse/toolkit-eval, writes manifest.json
       evaluate.py score PREDICTIONS.json     prints the tables (and --json OUT writes them)
scripts/toolkit/evaluate.sh runs both with the Rust side between them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

CACHE = Path.home() / ".cache/glimpse/toolkit-eval"
# (package, version, sdist sha256, members kept: path prefixes inside the sdist after its top folder)
SOURCES = {
    "labelme": ("labelme", "7.9.1", "d8cc51cde4dc8160284ed7f65ea417c9887ac7b0c4bf49ee1d7de974d0068a62",
                ["examples/instance_segmentation/data_dataset_coco/"]),
    "calamari": ("calamari-ocr", "2.3.0", "87b3fc0d7bd5b4b7e2a34df474c16bf2a3eb23a127ceb525e017115c9352c496",
                 ["calamari_ocr/test/data/uw3_50lines/", "calamari_ocr/test/data/avicanon_pagexml/"]),
    "kraken": ("kraken", "4.3.13", "e34549828fd4f3a9c08e438d1dca8cb4fc96dcacc7c3970692bdc6a43298bc5f",
               ["tests/resources/170025120000003,0074."]),
}
VOC_TO_COCO = {"aeroplane": "airplane", "diningtable": "dining table", "motorbike": "motorcycle", "sofa": "couch",
               "tv/monitor": "tv", "tvmonitor": "tv", "pottedplant": "potted plant"}
VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
               "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train", "tv/monitor"]
SCORED_COCO = {VOC_TO_COCO.get(c, c) for c in VOC_CLASSES}
SERVED_THRESHOLD = 0.3
THRESHOLDS = [0.2, 0.3, 0.4, 0.5]


def sdist_url(package: str, version: str) -> str:
    index = f"https://pypi.org/pypi/{package}/json"
    with urllib.request.urlopen(index, timeout=60) as r:
        release = json.load(r)["releases"][version]
    sdist = next(f for f in release if f["packagetype"] == "sdist")
    return urllib.parse.urljoin(index, sdist["url"])


def fetch_source(name: str) -> Path:
    package, version, sha, keep = SOURCES[name]
    out = CACHE / name
    if (out / ".complete").is_file():
        return out
    archive = CACHE / f"{package}-{version}.tar.gz"
    if not archive.is_file() or hashlib.sha256(archive.read_bytes()).hexdigest() != sha:
        print(f"evaluate: downloading {package} {version} from PyPI", file=sys.stderr)
        CACHE.mkdir(parents=True, exist_ok=True)
        urllib.request.urlretrieve(sdist_url(package, version), archive)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != sha:
        sys.exit(f"evaluate: {archive} has sha256 {digest}, expected {sha}")
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            inner = member.name.split("/", 1)[1] if "/" in member.name else ""
            if member.isfile() and any(inner.startswith(k) for k in keep):
                target = out / inner
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    archive.unlink()
    (out / ".complete").write_text(f"{package} {version}\n")
    return out


def points_box(points: str) -> list[float]:
    xy = [tuple(map(float, p.split(","))) for p in points.split()]
    xs, ys = [p[0] for p in xy], [p[1] for p in xy]
    return [min(xs), min(ys), max(xs), max(ys)]


def page_lines(xml: Path) -> list[dict]:
    """The transcribed lines of a PAGE file (any schema version): box and the first TextEquiv (index 0 when numbered)."""
    lines = []
    root = ET.parse(xml).getroot()
    ns = root.tag[: root.tag.index("}") + 1]
    for line in root.iter(f"{ns}TextLine"):
        equivs = line.findall(f"{ns}TextEquiv")
        chosen = next((e for e in equivs if e.get("index") == "0"), equivs[0] if equivs and equivs[0].get("index") is None else None)
        text = chosen.findtext(f"{ns}Unicode") if chosen is not None else None
        if text and text.strip():
            lines.append({"box": points_box(line.find(f"{ns}Coords").get("points")), "text": " ".join(text.split())})
    return lines


def fetch() -> None:
    labelme, calamari, kraken = fetch_source("labelme"), fetch_source("calamari"), fetch_source("kraken")
    items, truth = [], {}
    coco = labelme / "examples/instance_segmentation/data_dataset_coco"
    annotations = json.loads((coco / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in annotations["categories"]}
    for image in annotations["images"]:
        key = f"voc/{Path(image['file_name']).stem}"
        objects = [{"label": VOC_TO_COCO.get(names[a["category_id"]], names[a["category_id"]]),
                    "box": [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]}
                   for a in annotations["annotations"] if a["image_id"] == image["id"]]
        items.append({"id": key, "image": str(coco / image["file_name"]), "task": "detect"})
        truth[key] = {"set": "detection", "objects": objects}
    for gt in sorted((calamari / "calamari_ocr/test/data/uw3_50lines").glob("*/*.gt.txt")):
        key = f"uw3/{gt.parent.name}/{gt.name.split('.')[0]}"
        items.append({"id": key, "image": str(gt.with_name(gt.name.replace(".gt.txt", ".bin.png"))), "task": "read"})
        truth[key] = {"set": "printed lines", "text": " ".join(gt.read_text(encoding="utf-8").split())}
    for xml in sorted((calamari / "calamari_ocr/test/data/avicanon_pagexml").glob("*.xml")):
        key = f"avicanon/{xml.stem}"
        items.append({"id": key, "image": str(xml.with_suffix(".color.png")), "task": "read"})
        truth[key] = {"set": "printed pages", "lines": page_lines(xml)}
    xml = kraken / "tests/resources/170025120000003,0074.xml"
    items.append({"id": "kraken/0074", "image": str(xml.with_suffix(".jpg")), "task": "read"})
    truth["kraken/0074"] = {"set": "handwritten page", "lines": page_lines(xml)}
    (CACHE / "manifest.json").write_text(json.dumps(items, indent=1))
    (CACHE / "truth.json").write_text(json.dumps(truth, indent=1, ensure_ascii=False))
    print(CACHE / "manifest.json")


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def detection_scores(truth: dict, predictions: dict, threshold: float) -> dict:
    true_positive = false_positive = objects = full_frame = 0
    for key, want in truth.items():
        found = sorted((f for f in predictions[key]["found"] if f["score"] >= threshold and f["label"] in SCORED_COCO),
                       key=lambda f: -f["score"])
        w, h = predictions[key]["size"]
        full_frame += sum((f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]) >= 0.9 * w * h for f in found)
        unmatched = list(want["objects"])
        objects += len(unmatched)
        for f in found:
            best = max(unmatched, key=lambda o: iou(o["box"], f["box"]) if o["label"] == f["label"] else -1, default=None)
            if best is not None and best["label"] == f["label"] and iou(best["box"], f["box"]) >= 0.5:
                unmatched.remove(best)
                true_positive += 1
            else:
                false_positive += 1
    return {"threshold": threshold, "objects": objects, "found": true_positive,
            "recall": true_positive / objects if objects else 0.0,
            "precision": true_positive / (true_positive + false_positive) if true_positive + false_positive else 0.0,
            "false": false_positive, "full_frame": full_frame}


def overlap(a: list[float], b: list[float]) -> float:
    ix, iy = max(0.0, min(a[2], b[2]) - max(a[0], b[0])), max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy


def area(a: list[float]) -> float:
    return max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])


def iou(a: list[float], b: list[float]) -> float:
    shared = overlap(a, b)
    union = area(a) + area(b) - shared
    return shared / union if union > 0 else 0.0


def page_errors(lines: list[dict], found: list[dict]) -> tuple[int, int, int]:
    """(errors, ground-truth characters, ground-truth lines given some text) for one page."""
    given: dict[int, list[dict]] = {}
    inserted = 0
    for f in found:
        shared = [overlap(f["box"], line["box"]) for line in lines]
        best = max(range(len(lines)), key=lambda i: shared[i], default=None)
        if best is None or shared[best] == 0:
            continue  # outside every transcribed line: a part of the page nobody transcribed
        if shared[best] >= 0.3 * area(f["box"]) or shared[best] >= 0.5 * area(lines[best]["box"]):
            given.setdefault(best, []).append(f)
        else:
            inserted += len(f["text"])
    errors = inserted
    for i, line in enumerate(lines):
        read = " ".join(f["text"] for f in sorted(given.get(i, []), key=lambda f: f["box"][0]))
        errors += edit_distance(line["text"], " ".join(read.split()))
    return errors, sum(len(line["text"]) for line in lines), len(given)


def reading_scores(truth: dict, predictions: dict, name: str) -> dict:
    errors = characters = lines = lines_found = exact = 0
    seconds = 0.0
    for key, want in truth.items():
        if want["set"] != name:
            continue
        found, seconds = predictions[key]["found"], seconds + predictions[key]["seconds"]
        if "text" in want:
            read = " ".join(" ".join(f["text"] for f in found).split())
            e, c, n, given = edit_distance(want["text"], read), len(want["text"]), 1, int(bool(read))
            exact += read == want["text"]
        else:
            e, c, given = page_errors(want["lines"], found)
            n = len(want["lines"])
        errors, characters, lines, lines_found = errors + e, characters + c, lines + n, lines_found + given
    return {"set": name, "lines": lines, "lines_read": lines_found, "exact_lines": exact, "characters": characters,
            "character_accuracy": max(0.0, 1 - errors / characters) if characters else 0.0, "seconds": seconds}


def score(predictions_path: Path, out: Path | None) -> None:
    truth = json.loads((CACHE / "truth.json").read_text())
    run = json.loads(predictions_path.read_text())
    predictions = {p["id"]: p for p in run["items"]}
    detection = {k: v for k, v in truth.items() if v["set"] == "detection"}
    report = {"runtime": run["runtime"], "detection": [detection_scores(detection, predictions, t) for t in THRESHOLDS],
              "reading": [reading_scores(truth, predictions, s) for s in ["printed lines", "printed pages", "handwritten page"]]}
    print(f"Detection, VOC 2011 photos of labelme's examples ({len(detection)} photos, IoU 0.5; served threshold {SERVED_THRESHOLD}):")
    print(f"{'score >=':>9} {'objects':>8} {'found':>6} {'recall':>7} {'precision':>10} {'false':>6} {'full-frame':>11}")
    for d in report["detection"]:
        print(f"{d['threshold']:>9} {d['objects']:>8} {d['found']:>6} {d['recall']:>7.2f} {d['precision']:>10.2f} {d['false']:>6} {d['full_frame']:>11}")
    print("Reading (character accuracy = 1 - edit distance / ground-truth characters):")
    print(f"{'set':<18} {'lines':>6} {'read':>6} {'exact':>6} {'chars':>7} {'accuracy':>9} {'seconds':>8}")
    for r in report["reading"]:
        print(f"{r['set']:<18} {r['lines']:>6} {r['lines_read']:>6} {r['exact_lines']:>6} {r['characters']:>7} {r['character_accuracy']:>9.3f} {r['seconds']:>8.1f}")
    if out:
        out.write_text(json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fetch", "score"])
    parser.add_argument("predictions", nargs="?", type=Path)
    parser.add_argument("--json", type=Path, help="write the scores here too")
    args = parser.parse_args()
    if args.command == "fetch":
        fetch()
    else:
        score(args.predictions, args.json)


if __name__ == "__main__":
    main()
