"""HTML of the demo site: paginated index pages, detail pages and robots.txt."""

from __future__ import annotations

from html import escape

from demosite.catalogue import Catalogue

PER_PAGE = 25
ROBOTS_TXT = "User-agent: *\nDisallow: /admin/\n"

# Page layouts: the usual markup, and a redesign (one calendar day, demosite.calendar) that moves
# the price into other elements, so a site spec written for the usual markup finds no price.
STANDARD = "standard"
REDESIGN = "redesign"
LAYOUTS = (STANDARD, REDESIGN)

# Detail rows in page order: (field, label, CSS class of the <dd>).
DETAIL_ROWS = (
    ("listing_id", "Listing ID", "listing-id"),
    ("make", "Make", "make"),
    ("model", "Model", "model"),
    ("year", "Year", "year"),
    ("mileage", "Mileage", "mileage"),
    ("fuel", "Fuel", "fuel"),
    ("transmission", "Gearbox", "transmission"),
    ("engine_size", "Engine", "engine"),
    ("body", "Body style", "body"),
    ("posted_date", "Posted", "posted"),
)


def page_count(catalogue: Catalogue) -> int:
    return (len(catalogue.listings) + PER_PAGE - 1) // PER_PAGE


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} - Demo Cars</title></head>\n<body>\n"
        '<header><a class="home" href="/listings?page=1">Demo Cars</a></header>\n'
        f"{body}\n</body></html>\n"
    )


def _check(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r} (known: {', '.join(LAYOUTS)})")


def _card(shown: dict[str, str], href: str, extra_class: str = "", layout: str = STANDARD) -> str:
    title = f"{shown['year']} {shown['make']} {shown['model']}"
    classes = f"card {extra_class}".strip()
    price_class = "price" if layout == STANDARD else "amount"
    return (
        f'<li class="{classes}"><a class="listing-link" href="{escape(href)}">{escape(title)}</a>'
        f' <span class="{price_class}">{escape(shown["price"])}</span></li>'
    )


def index_page(catalogue: Catalogue, page: int, layout: str = STANDARD) -> str | None:
    """Index page ``page`` (1-based), or None past the last page.

    Every fifth page features the first listing of the previous page again (the same listing
    linked from two index pages), and every seventh page carries a staff preview link under
    /admin/ that robots.txt forbids.
    """
    _check(layout)
    pages = page_count(catalogue)
    if not 1 <= page <= pages:
        return None
    ids = catalogue.ids()
    chunk = ids[(page - 1) * PER_PAGE : page * PER_PAGE]
    cards = []
    if page > 1 and page % 5 == 0:
        featured = ids[(page - 2) * PER_PAGE]
        cards.append(_card(catalogue.display[featured], f"/listing/{featured}", "featured", layout))
    for listing_id in chunk:
        cards.append(_card(catalogue.display[listing_id], f"/listing/{listing_id}", "", layout))
    if page % 7 == 1:
        preview = chunk[0]
        cards.append(
            _card(catalogue.display[preview], f"/admin/preview/{preview}", "staff", layout)
        )
    nav = [f'<span class="page-number">Page {page} of {pages}</span>']
    if page > 1:
        nav.append(f'<a class="prev-page" rel="prev" href="/listings?page={page - 1}">Previous</a>')
    if page < pages:
        nav.append(f'<a class="next-page" rel="next" href="/listings?page={page + 1}">Next</a>')
    items = "\n".join(cards)
    body = (
        "<main><h1>Used cars for sale</h1>\n"
        f'<ul class="listings">\n{items}\n</ul>\n'
        f'<nav class="pagination">{" ".join(nav)}</nav>\n'
        f'<footer><a class="admin" href="/admin/listings?page={page}">Manage listings</a></footer>'
        "</main>"
    )
    return _document(f"Used cars - page {page}", body)


def detail_page(catalogue: Catalogue, listing_id: str, layout: str = STANDARD) -> str | None:
    """The detail page of one listing, or None for an unknown id."""
    _check(layout)
    shown = catalogue.display.get(listing_id)
    if shown is None:
        return None
    rows = "\n".join(
        f'<dt>{label}</dt><dd class="{css}">{escape(shown[name])}</dd>'
        for name, label, css in DETAIL_ROWS
        if name in shown
    )
    title = f"{shown['year']} {shown['make']} {shown['model']}"
    price = escape(shown["price"])
    if layout == STANDARD:
        price_markup = f'<p class="price">{price}</p>'
    else:
        price_markup = f'<div class="price-box"><span class="amount">{price}</span></div>'
    body = (
        f'<main><article class="listing" id="{escape(listing_id)}">\n'
        f'<h1 class="title">{escape(title)}</h1>\n'
        f"{price_markup}\n"
        f'<dl class="specs">\n{rows}\n</dl>\n'
        f'<p><a class="admin" href="/admin/listing/{escape(listing_id)}/edit">Edit</a></p>\n'
        "</article></main>"
    )
    return _document(title, body)
