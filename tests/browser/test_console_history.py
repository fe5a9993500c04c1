"""The console's history, claims, changes, revert, sources and upload choices, in a real browser on a real depot.

A module of its own, so its depot (module-scoped) starts empty: these tests write airlines and
sources that the load of test_console.py must not meet. Each test uses carrier codes of its own.
"""

from __future__ import annotations

import json
import threading
import zipfile

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.browser.conftest import READ_KEY, WRITE_KEY
from tests.browser.test_console import DATA, PHONE, WIDE, axe_violations, open_console, show

pytestmark = pytest.mark.postgres
AUTH = {"Authorization": f"Bearer {WRITE_KEY}"}


def api(depot: str, method: str, path: str, headers: dict | None = None, **kwargs) -> httpx.Response:
    response = httpx.request(method, depot + path, headers={**AUTH, **(headers or {})}, timeout=60, **kwargs)
    response.raise_for_status()
    return response


def source(depot: str, code: str, priority: int) -> None:
    api(depot, "POST", "/api/sources", json={"code": code, "name": code.title(), "priority": priority})


def has_visible_focus(page) -> bool:
    return page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"


def test_a_rows_history_after_an_edit_and_its_claims(browser, depot, screenshots):
    source(depot, "bts", 5)
    source(depot, "scraper", 1)
    api(depot, "POST", "/ingest/airlines?source=bts", json=[{"carrier": "HX1", "name": "Hist Air"}])
    # the scraper loses on priority: its name is kept as its claim, not stored
    api(depot, "POST", "/ingest/airlines?source=scraper", json=[{"carrier": "HX1", "name": "Hist Airways"}])
    page = open_console(browser, depot, WRITE_KEY)
    show(page, "#/row/airlines/HX1")
    page.fill("#edit-name", "Hist Air Lines")
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector("text=Saved: version 2")

    show(page, "#/row/airlines/HX1")  # the history as the page reads it afresh
    versions = page.locator("#history tbody tr")
    assert versions.count() == 2
    newest, first = versions.nth(0).inner_text(), versions.nth(1).inner_text()
    assert "update" in newest and "name: Hist Air → Hist Air Lines" in newest
    assert "insert" in first and "first version" in first and "bts" in first
    stored = api(depot, "GET", "/api/airlines/HX1/history").json()
    assert [v["operation"] for v in stored] == ["update", "insert"]
    problems = {"row": axe_violations(page)}
    page.screenshot(path=screenshots / "row-history.png", full_page=True)
    page.set_viewport_size(PHONE)  # narrow: the versions scroll inside their region, the page does not
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1
    page.screenshot(path=screenshots / "row-history-phone.png", full_page=True)
    page.set_viewport_size(WIDE)

    # The hand edit made the row manual's (its earlier values are in the history); the scraper's claim stays
    claims = page.locator("#claims tbody tr")
    assert claims.count() == 2
    by_source = {text.split("\t")[0]: text for text in (claims.nth(i).inner_text() for i in range(2))}
    assert "the stored row" in by_source["manual"] and "name: Hist Air Lines" in by_source["manual"]
    assert "a claim" in by_source["scraper"] and "name: Hist Air Lines → Hist Airways" in by_source["scraper"]
    assert api(depot, "GET", "/api/airlines/HX1").json()["source"] == "manual"

    page.get_by_role("button", name="Use scraper's values").click()
    page.wait_for_function("() => document.querySelector('[data-column=name]').textContent === 'Hist Airways'")
    assert api(depot, "GET", "/api/airlines/HX1").json()["name"] == "Hist Airways"

    # a version's time links to the row as the table read then: the API's as_of, in the grid
    page.locator("#history tbody tr").last.get_by_role("link", name=stored[1]["updated_at"]).click()
    page.wait_for_function("() => location.hash.startsWith('#/browse/airlines') && location.hash.includes('as_of=')")
    page.wait_for_selector("#rows tbody tr")
    assert "as_of=" in page.text_content("#api-query")
    assert page.locator("#rows tbody tr").count() == 1 and "Hist Air\t" in page.locator("#rows tbody tr").inner_text()
    problems["as_of"] = axe_violations(page)
    assert page.errors == []  # type: ignore[attr-defined]
    assert {k: v for k, v in problems.items() if v} == {}, json.dumps(problems, indent=1)


def test_a_table_without_history_shows_no_history_nor_claims(browser, depot):
    source(depot, "quiet", 0)
    page = open_console(browser, depot, WRITE_KEY)
    show(page, "#/row/sources/quiet")
    assert page.locator("h2", has_text="Values").is_visible()
    assert page.locator("h2", has_text="History").count() == 0 and page.locator("h2", has_text="Claims").count() == 0
    assert page.locator("text=Something went wrong").count() == 0


def test_an_uploaded_batchs_changes_and_its_revert(browser, depot, screenshots, tmp_path):
    path = tmp_path / "airlines.csv"
    path.write_text("carrier,name\nRV1,Revert One\nRV2,Revert Two\nRV3,Revert Three\n")
    page = open_console(browser, depot, WRITE_KEY)
    show(page, "#/upload")
    page.set_input_files("#u-file", str(path))
    page.select_option("#u-source", "manual")  # the same priority as the write below, which then updates
    page.get_by_role("button", name="Upload").click()
    page.wait_for_selector("#u-result #report")
    batch = int(page.locator("#u-result a[href^='#/batches/']").first.inner_text().split()[-1])
    # another write changes one of its rows afterwards: the revert must leave that one alone
    later = api(depot, "POST", "/ingest/airlines", json=[{"carrier": "RV2", "name": "Changed Later"}]).json()
    assert later["updated"] == 1

    show(page, f"#/batches/{batch}")
    changes = page.locator("#changes tbody tr")
    assert changes.count() == 3 and "3 changes" in page.locator("#changes").inner_text()
    first = changes.nth(0).inner_text()
    assert "inserted" in first and "new: carrier: RV1; name: Revert One" in first
    assert "no, changed since" in changes.nth(1).inner_text()  # RV2
    revert = page.get_by_role("button", name="Revert this batch…")
    revert.focus()
    page.keyboard.press("Enter")  # by keyboard: the confirmation takes the focus, visibly
    assert page.evaluate("document.activeElement.textContent") == "Yes, revert" and has_visible_focus(page)
    page.keyboard.press("Enter")
    result = page.wait_for_selector("#revert-result .notice.good")
    assert "2 deleted" in result.inner_text() and "1 left as they are" in result.inner_text()
    assert "RV2" in page.locator("#revert-result table").inner_text()
    problems = axe_violations(page)
    page.screenshot(path=screenshots / "batch-revert.png", full_page=True)
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1
    page.screenshot(path=screenshots / "batch-revert-phone.png", full_page=True)
    page.set_viewport_size(WIDE)
    rows = api(depot, "GET", "/api/airlines?carrier=in.(RV1,RV2,RV3)").json()
    assert [(r["carrier"], r["name"]) for r in rows] == [("RV2", "Changed Later")]

    show(page, f"#/batches/{batch}")  # a second plain revert is refused: said in words, with the way out
    page.get_by_role("button", name="Revert this batch…").click()
    page.get_by_role("button", name="Yes, revert").click()
    refused = page.wait_for_selector("#revert-result [role=alert]")
    assert f"Not reverted: The batch {batch} was reverted already" in refused.inner_text()
    page.get_by_role("button", name="Revert again…").click()
    page.get_by_role("button", name="Yes, revert").click()
    page.wait_for_selector("#revert-result .notice.good")
    assert api(depot, "GET", "/api/airlines?carrier=eq.RV2").json() == []  # forced: over the later change too
    assert page.errors == [] and problems == []  # type: ignore[attr-defined]


def test_sources_are_created_and_edited_and_a_bad_profile_is_shown_beside_its_field(browser, depot, screenshots):
    page = open_console(browser, depot, WRITE_KEY)
    show(page, "#/sources")
    page.fill("#new-sources-code", "shop_a")
    page.fill("#new-sources-name", "Shop A")
    page.fill("#new-sources-priority", "3")
    page.fill("#new-sources-profile", '{"formats": {"date": "%Q"}}')
    page.get_by_role("button", name="Create").click()
    error = page.locator("#new-sources-profile-error")
    error.wait_for()
    assert "profile.formats.date '%Q' is not a strftime pattern" in error.inner_text()
    assert page.get_attribute("#new-sources-profile", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "new-sources-profile"
    assert httpx.get(f"{depot}/api/sources/shop_a", headers=AUTH).status_code == 404  # nothing was written
    page.screenshot(path=screenshots / "sources-error.png", full_page=True)

    page.fill("#new-sources-profile", '{"columns": {"Carrier Name": "name"}, "match": "normalized"}')
    page.get_by_role("button", name="Create").click()
    page.wait_for_selector("#main table.grid a:text-is('shop_a')")
    listed = page.locator("tr", has=page.get_by_role("link", name="shop_a", exact=True)).inner_text().split("\t")
    assert listed[:3] == ["shop_a", "Shop A", "3"] and set(listed[4].split(", ")) == {"columns", "match"}
    created = api(depot, "GET", "/api/sources/shop_a").json()
    assert (created["priority"], created["profile"]["match"]) == (3, "normalized")
    problems = {"sources": axe_violations(page)}
    page.screenshot(path=screenshots / "sources.png", full_page=True)

    # edit: the row page's form; a profile that is not JSON is caught before it is sent, a bad one by the API
    page.get_by_role("link", name="Edit shop_a").click()
    page.wait_for_selector("#edit-profile")
    assert page.get_attribute("#nav a[data-page=sources]", "aria-current") == "page"
    page.fill("#edit-priority", "7")
    page.fill("#edit-profile", '{"columns": ')
    page.get_by_role("button", name="Save").click()
    assert "This is not JSON" in page.locator("#edit-profile-error").inner_text()
    page.fill("#edit-profile", '{"contract": {"unknown": "explode"}}')
    page.get_by_role("button", name="Save").click()
    page.wait_for_function("() => document.querySelector('#edit-profile-error').textContent.includes('contract')")
    assert api(depot, "GET", "/api/sources/shop_a").json()["priority"] == 3  # refused whole
    page.fill("#edit-profile", '{"contract": {"unknown": "discard"}}')
    page.get_by_role("button", name="Save").click()
    page.wait_for_selector("text=Saved: version 2")
    assert page.locator("#edit-profile-error").inner_text() == ""
    edited = api(depot, "GET", "/api/sources/shop_a").json()
    assert (edited["priority"], edited["profile"]) == (7, {"contract": {"unknown": "discard"}})
    problems["source row"] = axe_violations(page)

    page.set_viewport_size(PHONE)  # narrow: the list scrolls inside its region, the form stacks
    show(page, "#/sources")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1
    page.screenshot(path=screenshots / "sources-phone.png", full_page=True)
    assert page.errors == []  # type: ignore[attr-defined]
    assert {k: v for k, v in problems.items() if v} == {}, json.dumps(problems, indent=1)


def parquet_file(path, rows: list[dict]) -> None:
    pq.write_table(pa.Table.from_pylist(rows), path)


def upload_with(page, path, disposition: str) -> dict:
    show(page, "#/upload")
    page.set_input_files("#u-file", str(path))
    assert page.input_value("#u-source") == "manual"  # the API's default, not the first source by name
    page.select_option("#u-disposition", disposition)
    page.get_by_role("button", name="Upload").click()
    page.wait_for_selector("#u-result #report")
    fields = ("status", "disposition", "inserted", "deleted")
    return {f: page.text_content(f'#u-result [data-field="{f}"]') for f in fields}


def test_a_parquet_upload_and_a_delete_disposition(browser, depot, screenshots, tmp_path):
    folder = tmp_path / "load"
    folder.mkdir()
    parquet_file(folder / "airlines.parquet", [{"carrier": c, "name": f"Parquet {c}"} for c in ("PQ1", "PQ2", "PQ3")])
    source(depot, "aaa_strong", 9)
    page = open_console(browser, depot, WRITE_KEY)
    report = upload_with(page, folder / "airlines.parquet", "")  # the table's default, which is upsert here
    assert report == {"status": "completed", "disposition": "upsert", "inserted": "3", "deleted": "0"}
    assert page.locator("#u-partition").is_hidden()
    page.select_option("#u-disposition", "replace_partition")  # its partition columns are asked for then
    assert page.locator("#u-partition").is_visible() and page.get_attribute("#u-partition", "required") == ""
    problems = axe_violations(page)
    page.screenshot(path=screenshots / "upload-parquet.png", full_page=True)

    parquet_file(folder / "airlines.parquet", [{"carrier": "PQ2", "name": "any"}])
    report = upload_with(page, folder / "airlines.parquet", "delete")
    assert report == {"status": "completed", "disposition": "delete", "inserted": "0", "deleted": "1"}
    stored = api(depot, "GET", "/api/airlines?carrier=like.PQ*&order=carrier").json()
    assert [r["carrier"] for r in stored] == ["PQ1", "PQ3"]
    assert page.errors == [] and problems == []  # type: ignore[attr-defined]


def flights_csv(rows: int) -> tuple[bytes, list[bytes]]:
    with zipfile.ZipFile(DATA / "flights.csv.zip") as archive:
        lines = archive.read("flights.csv").splitlines(keepends=True)[: rows + 1]
    return lines[0], lines[1:]


def test_a_running_batch_updates_on_the_batches_page_without_a_reload(browser, depot, screenshots):
    """The body is held open between chunks of 5,000 rows (the route's CHUNK_ROWS): a chunk is written,
    and its counts committed, once the next one has arrived, so each release moves `received`."""
    for table in ("airlines", "airports"):
        api(depot, "POST", f"/ingest/{table}?csv_null=NA", content=(DATA / f"{table}.csv").read_bytes(),
            headers={"Content-Type": "text/csv"})
    header, rows = flights_csv(15_000)
    release = [threading.Event() for _ in range(2)]
    answer: dict = {}

    def body():
        yield header + b"".join(rows[:5000])
        yield b"".join(rows[5000:10000])  # the first chunk is written now
        release[0].wait(120)
        yield b"".join(rows[10000:])  # the second one now
        release[1].wait(120)

    def send():
        try:
            answer["report"] = httpx.post(f"{depot}/ingest/flights?csv_null=NA", content=body(), timeout=300,
                                          headers={**AUTH, "Content-Type": "text/csv"}).json()
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            answer["error"] = error

    sender = threading.Thread(target=send)
    sender.start()
    try:
        page = open_console(browser, depot, READ_KEY)  # watching needs no write key
        show(page, "#/batches")
        page.evaluate("window.notReloaded = true")
        running = page.locator("table.grid tbody tr", has=page.locator(".badge.running"))
        running.wait_for(timeout=60_000)
        page.wait_for_function("() => [...document.querySelectorAll('table.grid tbody tr')].some("
                               "r => r.querySelector('.badge.running') && r.cells[5].textContent === '5000')",
                               timeout=60_000)
        page.screenshot(path=screenshots / "batches-live.png", full_page=True)
        release[0].set()
        page.wait_for_function("() => [...document.querySelectorAll('table.grid tbody tr')].some("
                               "r => r.querySelector('.badge.running') && r.cells[5].textContent === '10000')",
                               timeout=60_000)
        assert running.locator("td").nth(5).inner_text() == "10000"
        release[1].set()
        sender.join(120)
        page.locator("table.grid tbody tr .badge.completed", has_text="completed").first.wait_for()
        page.wait_for_function("() => !document.querySelector('.badge.running')", timeout=30_000)
        assert page.evaluate("window.notReloaded") is True  # the same page all along: no reload
        report = answer["report"]
        assert report["status"] == "completed" and report["received"] == 15_000, answer
        assert f"{report['batch_id']}" in page.locator("table.grid tbody tr").first.inner_text()
    finally:
        for event in release:
            event.set()
        sender.join(120)


def test_a_read_key_sees_no_revert_promote_nor_source_forms(browser, depot):
    source(depot, "rk_low", -1)
    batch = api(depot, "POST", "/ingest/airlines", json=[{"carrier": "RK1", "name": "Read Key"}]).json()["batch_id"]
    api(depot, "POST", "/ingest/airlines?source=rk_low", json=[{"carrier": "RK1", "name": "Loser"}])
    page = open_console(browser, depot, READ_KEY)
    show(page, "#/sources")
    assert page.get_by_role("link", name="rk_low", exact=True).is_visible()
    assert page.get_by_role("button", name="Create").count() == 0 and page.get_by_role("link", name="Edit").count() == 0
    show(page, f"#/batches/{batch}")
    assert page.locator("#changes tbody tr").count() == 1
    assert page.get_by_role("button", name="Revert this batch…").count() == 0
    show(page, "#/row/airlines/RK1")
    assert "rk_low" in page.locator("#claims").inner_text()
    assert page.get_by_role("button", name="Use rk_low's values").count() == 0
    # the edit form is not there either, so the profile field never is
    show(page, "#/row/sources/rk_low")
    assert page.locator("#edit-profile").count() == 0
