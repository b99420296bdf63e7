"""The web console end to end: what an operator does with it, in a real browser, against a real
server. Changes "made by someone else" go through the HTTP API as bob while the page is open;
the page must show them without a reload (the live feed)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import APIRequestContext, Locator, Page, Playwright, expect

from tests.e2e.harness import TIMEOUT_MS, BrowserLog, Screenshots, console_server
from tests.support.processes import START_TIMEOUT
from tests.support.servers import free_port

Json = dict[str, Any]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create(api: APIRequestContext, **fields: Any) -> Json:
    response = await api.post("v1/documents", data={"author": "bob", **fields})
    assert response.ok, await response.text()
    document: Json = await response.json()
    return document


async def get(api: APIRequestContext, doc_id: str) -> Json:
    response = await api.get(f"v1/documents/{doc_id}")
    assert response.ok, await response.text()
    document: Json = await response.json()
    return document


async def update(api: APIRequestContext, doc_id: str, **fields: Any) -> Json:
    """As bob, on the current version (its etag as If-Match)."""
    etag = (await get(api, doc_id))["etag"]
    mask = ",".join(fields)
    response = await api.patch(
        f"v1/documents/{doc_id}", data={**fields, "updateMask": mask}, headers={"If-Match": etag}
    )
    assert response.ok, await response.text()
    document: Json = await response.json()
    return document


async def open_console(page: Page, path: str = "/") -> None:
    """The page, once its live feed is connected (changes from then on reach it)."""
    await page.goto(path)
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")


async def no_horizontal_scroll(page: Page) -> None:
    """Nothing in the page is wider than the screen."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert page.viewport_size is not None
    assert width <= page.viewport_size["width"], width


def rows(page: Page) -> Locator:
    return page.locator("table.documents tbody tr")


def tab(page: Page, name: str) -> Locator:
    """A tab of a document's pages: Document, History, Blame."""
    return page.get_by_role("navigation", name="Document pages").get_by_role("link", name=name)


async def test_documents_list_follows_the_feed(
    page: Page, api: APIRequestContext, screenshots: Screenshots
) -> None:
    """The list (newest change first) and the activity panel follow the changes as they come."""
    created = {}
    for title, status in [
        ("Incident runbook: disk full", "PUBLISHED"),
        ("Release checklist 2.4", "DRAFT"),
        ("On-call handbook", "PUBLISHED"),
    ]:
        content = f"{title}\n\nFirst draft."
        created[title] = await create(
            api, title=title, status=status, category="operations", tags=["ops"], content=content
        )
    await open_console(page)
    await expect(rows(page).first).to_contain_text("On-call handbook")
    activity = page.get_by_role("complementary", name="Live activity")
    await expect(activity).to_contain_text("Changes made from now on appear here.")

    await create(
        api, title="Security review", category="security", tags=["ops", "audit"], content="Scope"
    )
    await expect(rows(page).first).to_contain_text("Security review")
    runbook = created["Incident runbook: disk full"]
    await update(api, runbook["id"], content="Free space first.\nThen restart the service.")
    await expect(rows(page).first).to_contain_text("Incident runbook: disk full")
    await expect(rows(page).first.locator("td[data-label=Version]")).to_have_text("2")
    await expect(rows(page).nth(1)).to_contain_text("Security review")
    items = activity.get_by_role("listitem")
    await expect(items).to_have_text(
        [
            re.compile(r"^Incident runbook: disk full updated by bob · v2 · "),
            re.compile(r"^Security review created by bob · v1 · "),
        ]
    )
    await screenshots.take(page, "list-1280")
    await screenshots.readme(page)


async def test_create_edit_conflict_history_revert(
    page: Page, api: APIRequestContext, browser_log: BrowserLog, screenshots: Screenshots
) -> None:
    tag = unique("flow")
    title = f"Runbook {tag}"
    original = "Check the disks\nRestart the service\nTell the team"
    await open_console(page)

    # Who the console acts as: recorded as changed_by in the history.
    await page.get_by_role("button", name="Acting as nobody").click()
    await page.get_by_label("Your name").fill("alice")
    await page.get_by_label("Your name").press("Enter")
    await expect(page.get_by_role("button", name="Acting as alice")).to_be_focused()

    # Create, submitting with Enter.
    await (
        page.get_by_role("navigation", name="Main").get_by_role("link", name="New document").click()
    )
    await expect(page.get_by_label("Title")).to_be_focused()
    await page.get_by_label("Title").fill(title)
    await expect(page.get_by_label("Author")).to_have_value("alice")
    await page.get_by_label("Tags").fill(f"{tag}, ops")
    await page.get_by_label("Content", exact=True).fill(original)
    await screenshots.take(page, "new-document")
    await page.get_by_label("Title").press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_have_text(title)
    await expect(page.locator(".doc-title")).to_contain_text("v1")
    doc_id = page.url.rsplit("/", 1)[1]
    assert (await get(api, doc_id))["tags"] == [tag, "ops"]

    # Edit.
    await page.get_by_role("button", name="Edit").click()
    await page.get_by_label("Content", exact=True).fill(
        "Check the disks\nRestart the service gently\nTell the team"
    )
    await page.get_by_label("Change message").fill("gentler")
    await screenshots.take(page, "edit")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Saved version 2.")).to_be_visible()
    await expect(page.locator(".doc-content pre")).to_contain_text("gently")
    await screenshots.take(page, "document")

    # A conflict: bob saves while alice edits; alice's save is refused (412) and she sees
    # what bob changed, then re-applies her edit on his version.
    await page.get_by_role("button", name="Edit").click()
    await page.get_by_label("Title").fill(f"{title} (reviewed)")
    await update(
        api,
        doc_id,
        content="Check the disks\nRestart the service gently\nTell the team\nPage on-call",
    )
    await expect(page.locator(".notices")).to_contain_text("Version 3: updated by bob")
    browser_log.expect("status of 412")
    await page.get_by_role("button", name="Save").click()
    conflict = page.get_by_role("region", name="This document changed while you were editing")
    await expect(conflict).to_contain_text("You started from version 2")
    await expect(conflict).to_contain_text("Since then: version 3 by bob")
    # "Tell the team" gained the newline it lacked at the end: marked as a line-ending change.
    added = conflict.locator(".diff-table td.text.ins")
    await expect(added).to_have_text(["Tell the team", "Page on-call"])
    await expect(conflict.locator(".diff-table tr.eol")).to_contain_text("Tell the team")
    await expect(conflict.locator(".your-edit")).to_contain_text(f"{title} (reviewed)")
    await expect(conflict).to_contain_text("You changed different fields")
    await screenshots.take(page, "conflict")
    await conflict.get_by_role("button", name="Re-apply my edit on version 3").click()
    await expect(page.get_by_text("Saved version 4.")).to_be_visible()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"{title} (reviewed)")
    merged = await get(api, doc_id)
    assert merged["title"] == f"{title} (reviewed)"
    assert merged["content"].endswith("Page on-call")

    # History: who, when, what kind, the message.
    await tab(page, "History").click()
    versions = page.locator("table.versions tbody tr")
    await expect(versions).to_have_count(4)
    await expect(versions.nth(0)).to_contain_text("v4 (current)")
    await expect(versions.nth(0)).to_contain_text("alice")
    await expect(versions.nth(1)).to_contain_text("bob")
    await expect(versions.nth(2)).to_contain_text("gentler")
    await expect(versions.nth(3)).to_contain_text("created")

    # A side-by-side diff of two chosen versions, then unified.
    await page.get_by_label("Compare from version 1").check()
    await page.get_by_label("Compare to version 4").check()
    await page.get_by_role("button", name="Compare selected versions").click()
    await expect(page).to_have_url(re.compile(r"history\?from=1&to=4$"))
    comparison = page.get_by_role("region", name="Changes from version 1 to version 4")
    await expect(comparison.locator("table.field-changes")).to_contain_text(f"{title} (reviewed)")
    split = comparison.locator("table.diff-table.split")
    await expect(split.locator("td.text.del")).to_contain_text(["Restart the service"])
    await expect(split.locator("td.text.ins")).to_contain_text(
        ["Restart the service gently", "Page on-call"]
    )
    await screenshots.take(page, "history")
    await comparison.get_by_label("Unified").check()
    await expect(comparison.locator("table.diff-table.unified tr.ins")).to_have_count(3)

    # Revert to version 1 (the dialog answers to the keyboard).
    await page.get_by_role("button", name="Revert to v1").click()
    dialog = page.get_by_role("dialog", name="Revert to version 1?")
    await expect(dialog.get_by_label("Change message (optional)")).to_have_value(
        "Revert to version 1"
    )
    await dialog.get_by_label("Change message (optional)").press("Enter")
    await expect(page.get_by_text("Reverted: version 5 equals version 1.")).to_be_visible()
    await expect(versions).to_have_count(5)
    await expect(versions.nth(0)).to_contain_text("reverted to v1")
    reverted = await get(api, doc_id)
    assert (reverted["title"], reverted["content"], reverted["version"]) == (title, original, "5")

    # Blame: each line with the version that last changed it and who made that version.
    await tab(page, "Blame").click()
    blame = page.locator("table.blame")
    await expect(blame).to_contain_text("Check the disks")
    await expect(blame.locator("tbody td.who").first).to_contain_text("v1 alice")
    await expect(blame.locator("td.who").last).to_contain_text("v5 alice")
    await screenshots.take(page, "blame")
    await page.get_by_label("Blame of version").fill("3")
    await page.get_by_label("Blame of version").press("Enter")
    await expect(blame.locator("caption")).to_contain_text("Version 3")
    await expect(blame.locator("td.who").last).to_contain_text("v3 bob")

    # Delete (confirmed from the keyboard) and restore.
    await tab(page, "Document").click()
    await page.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete this document?")
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await expect(dialog.get_by_role("button", name="Delete")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator(".doc-title .badge.deleted")).to_be_visible()
    assert (await api.get(f"v1/documents/{doc_id}")).status == 404
    await page.get_by_role("button", name="Restore").click()
    await expect(page.locator(".doc-title .badge.deleted")).to_have_count(0)
    await expect(page.get_by_role("button", name="Edit")).to_be_visible()
    assert (await get(api, doc_id))["version"] == "7"


async def test_conflict_on_the_same_field_edit_again_or_discard(
    page: Page, api: APIRequestContext, browser_log: BrowserLog
) -> None:
    """Both changed the content: the user is warned, edits again from the current version with
    their own text kept; a second conflict is discarded, leaving the other user's change."""
    browser_log.expect("status of 412")
    doc = await create(api, title=unique("Shared notes"), content="alpha\nbeta\n")
    await open_console(page, f"/#/documents/{doc['id']}")
    editor = page.get_by_role("form", name="Edit document")
    await page.get_by_role("button", name="Edit").click()
    await page.get_by_label("Content", exact=True).fill("alpha\nBETA, said alice\n")
    await update(api, doc["id"], content="alpha\nbeta\ngamma\n")
    await expect(page.locator(".notices")).to_contain_text("Saving will show you what changed.")
    await page.get_by_label("Content", exact=True).press("Control+Enter")  # saves too

    conflict = page.get_by_role("region", name="This document changed while you were editing")
    await expect(conflict.locator(".warning")).to_contain_text("You both changed: content.")
    await conflict.get_by_role("button", name="Edit again from the current version").click()
    await expect(editor).to_contain_text("Editing version 2")
    await expect(page.get_by_label("Content", exact=True)).to_have_value(
        "alpha\nBETA, said alice\n"
    )
    await editor.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Saved version 3.")).to_be_visible()
    assert (await get(api, doc["id"]))["content"] == "alpha\nBETA, said alice\n"

    await page.get_by_role("button", name="Edit").click()
    await page.get_by_label("Title").fill("Mine")
    await update(api, doc["id"], title="Theirs")
    await expect(page.locator(".notices")).to_contain_text("Version 4: updated by bob")
    await editor.get_by_role("button", name="Save").click()
    await conflict.get_by_role("button", name="Discard my edit").click()
    await expect(editor).to_have_count(0)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Theirs")
    await expect(page.locator(".doc-title")).to_contain_text("v4")
    assert (await get(api, doc["id"]))["version"] == "4"


async def test_open_document_follows_the_feed(page: Page, api: APIRequestContext) -> None:
    tag = unique("live")
    await open_console(page, f"/#/?tag={tag}")
    await expect(page.locator(".summary")).to_contain_text("No documents match")

    doc = await create(api, title=f"Live {tag}", tags=[tag], content="first")
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page)).to_contain_text(f"Live {tag}")
    await update(api, doc["id"], title=f"Live {tag} renamed")
    await expect(rows(page)).to_contain_text(f"Live {tag} renamed")

    await rows(page).get_by_role("link").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Live {tag} renamed")
    await update(api, doc["id"], content="second")
    await expect(page.locator(".doc-content pre")).to_have_text("second")
    await expect(page.locator(".notices")).to_contain_text("Version 3: updated by bob just now.")

    assert (await api.delete(f"v1/documents/{doc['id']}")).ok
    await expect(page.locator(".doc-title .badge.deleted")).to_be_visible()
    await expect(page.get_by_role("button", name="Restore")).to_be_visible()
    await expect(page.locator(".notices")).to_contain_text("Version 4: deleted by bob")

    # The history page follows too.
    await tab(page, "History").click()
    await expect(page.locator("table.versions tbody tr")).to_have_count(4)
    restored = await api.post(f"v1/documents/{doc['id']}:restore", data={})
    assert restored.ok
    await expect(page.locator("table.versions tbody tr")).to_have_count(5)
    await expect(page.locator("table.versions tbody tr").first).to_contain_text("restored")


async def test_live_feed_resumes_after_a_server_restart(
    page: Page,
    playwright: Playwright,
    browser_log: BrowserLog,
    tmp_path: Path,
) -> None:
    """The server the page watches dies; a write goes through another server on the same
    database meanwhile; once the first is back, EventSource reconnects with Last-Event-ID and
    the page gets that write from the feed (nothing else reloads the list)."""
    browser_log.expect("ERR_CONNECTION_REFUSED")  # EventSource's attempts while it is down
    http_port, grpc_port = free_port(), free_port()
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(console_server(tmp_path, http_port, grpc_port))
        await open_console(page, first.url)
        other = await stack.enter_async_context(console_server(tmp_path))
        api = await playwright.request.new_context(
            base_url=other.url, extra_http_headers={"x-actor": "bob"}, timeout=TIMEOUT_MS
        )
        stack.push_async_callback(api.dispose)
        await create(api, title="Before the restart")
        await expect(rows(page)).to_have_count(1)

        first.process.terminate()  # graceful: the stream ends with a last heartbeat
        await asyncio.wait_for(first.process.wait(), START_TIMEOUT)
        await expect(page.locator("#live-status")).to_have_text("Reconnecting…")
        await create(api, title="While it was down")
        async with console_server(tmp_path, http_port, grpc_port):
            await expect(page.locator("#live-status")).to_have_text("Live")
            await expect(rows(page)).to_have_count(2)
            await expect(rows(page).first).to_contain_text("While it was down")
            await page.close()  # before its server goes, so as not to see the stream cut


async def test_search_filters_sorting_and_pages(
    page: Page, api: APIRequestContext, browser_log: BrowserLog
) -> None:
    tag = unique("find")
    titles = [f"{tag} doc {n:02d}" for n in range(12)]
    for n, title in enumerate(titles):
        await create(
            api,
            title=title,
            tags=[tag],
            status="PUBLISHED" if n % 3 == 0 else "DRAFT",
            content=f"Entry {n}." + (" Bound for Zanzibar." if n == 7 else ""),
        )
    await open_console(page)
    await page.get_by_label("Tag").fill(tag)
    await page.get_by_label("Tag").press("Enter")
    await expect(page.locator(".summary")).to_have_text("12 documents")
    await expect(rows(page)).to_have_count(12)
    await page.get_by_label("Page size").select_option("10")
    await expect(page).to_have_url(re.compile(r"size=10"))
    await expect(rows(page)).to_have_count(10)
    await expect(page.locator(".page-label")).to_have_text("Page 1 of 2")
    await expect(rows(page).first).to_contain_text(titles[11])  # last updated first

    await page.get_by_role("button", name="Next").click()
    await expect(page.locator(".page-label")).to_have_text("Page 2 of 2")
    await expect(rows(page)).to_have_count(2)
    await expect(rows(page).last).to_contain_text(titles[0])
    await expect(page.get_by_role("button", name="Next")).to_be_disabled()
    await page.get_by_role("button", name="Previous").click()
    await expect(rows(page)).to_have_count(10)

    # Sorting by a column header: ascending, then descending.
    await page.get_by_role("button", name="Title").click()
    await expect(page).to_have_url(re.compile(r"sort=title(&|$)"))
    await expect(page.locator("th[aria-sort=ascending]")).to_have_text("Title ↑")
    await expect(rows(page).first).to_contain_text(titles[0])
    await page.get_by_role("button", name="Title").click()
    await expect(page).to_have_url(re.compile(r"sort=title\+desc"))
    await expect(rows(page).first).to_contain_text(titles[11])
    await page.get_by_role("button", name="Created").click()
    await expect(page.locator("th[aria-sort=descending]")).to_contain_text("Created")

    # A status filter applies as soon as it is chosen.
    await page.get_by_label("Status").select_option("PUBLISHED")
    await expect(page.locator(".summary")).to_have_text("4 documents")

    # Full-text search, with the matched word marked.
    await page.get_by_label("Status").select_option("")
    await page.get_by_role("searchbox", name="Search").fill("zanzibar")
    await page.get_by_role("searchbox", name="Search").press("Enter")
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page)).to_contain_text(titles[7])
    await expect(rows(page).locator("mark")).to_have_text("Zanzibar")
    await expect(page.get_by_label("Sort")).to_be_disabled()

    # A filter the server refuses: its message, on the field.
    browser_log.expect("status of 400")
    await page.get_by_role("searchbox", name="Search").fill("")
    await page.get_by_text("Advanced filter").click()
    await page.get_by_label("Filter expression (AIP-160)").fill("version > x")
    await page.get_by_label("Filter expression (AIP-160)").press("Enter")
    await expect(page.locator(".field-error")).to_contain_text("version needs an integer")
    await expect(page.get_by_label("Filter expression (AIP-160)")).to_have_attribute(
        "aria-invalid", "true"
    )
    await page.get_by_role("button", name="Clear").click()
    await expect(page).to_have_url(re.compile(r"#/$"))
    await expect(page.get_by_label("Tag")).to_have_value("")


@pytest.mark.narrow
async def test_phone_width(page: Page, api: APIRequestContext, screenshots: Screenshots) -> None:
    """At 390 px: one column, rows as cards, diffs unified, nothing wider than the screen."""
    tag = unique("phone")
    doc = await create(
        api,
        title=f"A fairly long title for a small screen {tag}",
        tags=[tag, "mobile"],
        category="field-notes",
        content="One line\nA second, rather longer line that has to wrap on a phone screen\nEnd",
    )
    await update(api, doc["id"], content="One line\nA changed second line\nEnd")
    await open_console(page, f"/#/?tag={tag}")
    await expect(rows(page)).to_have_count(1)
    await no_horizontal_scroll(page)
    await screenshots.take(page, "list-390")

    await rows(page).get_by_role("link").click()
    await expect(page.locator(".doc-content pre")).to_contain_text("A changed second line")
    await no_horizontal_scroll(page)
    await screenshots.take(page, "document-390")

    await tab(page, "History").click()
    await page.get_by_role("link", name="Changes in version 2").click()
    comparison = page.get_by_role("region", name="Changes from version 1 to version 2")
    await expect(comparison.locator("table.diff-table.unified")).to_be_visible()
    await no_horizontal_scroll(page)
    await screenshots.take(page, "history-390")

    await tab(page, "Blame").click()
    await expect(page.locator("table.blame")).to_contain_text("A changed second line")
    await no_horizontal_scroll(page)
    await screenshots.take(page, "blame-390")
