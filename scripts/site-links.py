#!/usr/bin/env python3
"""Checks the built site's links: every href and src that stays on the site
names a file that exists under it, and every #fragment an id (or a name) in
the page it points to; and nothing a page loads (scripts, style sheets,
images) comes from another host. Links to other hosts (with a scheme, or starting
with //) are listed by host, not followed. Exits 1 on the first report of
broken links, naming each with the page it is on."""

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids = set()
        self.links = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                # What the page loads (a script, a style sheet, an image),
                # rather than what it links to.
                loads = key == "src" or tag == "link"
                self.links.append((attrs[key], loads))


def main(root: Path) -> int:
    pages = {}
    for path in sorted(root.rglob("*.html")):
        page = Page()
        page.feed(path.read_text(encoding="utf-8"))
        pages[path.resolve()] = page
    if not pages:
        print(f"site-links: no pages under {root}", file=sys.stderr)
        return 1
    broken, outside, checked = [], set(), 0
    for path, page in pages.items():
        for link, loads in page.links:
            parts = urlsplit(link)
            if loads and (parts.scheme or link.startswith("//")) and parts.scheme != "data":
                broken.append((path, link, "loaded from another host"))
                continue
            if parts.scheme or link.startswith("//"):
                if parts.scheme in ("http", "https"):
                    outside.add(parts.netloc)
                elif parts.scheme not in ("mailto", "data"):
                    broken.append((path, link, f"scheme {parts.scheme}:"))
                continue
            checked += 1
            if not parts.path:
                target = path
            elif parts.path.startswith("/"):
                # The 404 page, served at any path, links from the root.
                target = (root / unquote(parts.path).lstrip("/")).resolve()
            else:
                target = (path.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file() or root.resolve() not in target.parents:
                broken.append((path, link, "no such file on the site"))
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html" and fragment not in pages[target].ids:
                broken.append((path, link, f"no id {fragment!r} in {target.name}"))
    for path, link, why in broken:
        print(f"site-links: {path.relative_to(root.resolve())}: {link}: {why}", file=sys.stderr)
    print(f"site-links: {len(pages)} pages, {checked} links on the site checked, "
          f"{len(broken)} broken; hosts linked to but not followed: {', '.join(sorted(outside)) or 'none'}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
