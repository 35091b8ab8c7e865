#!/usr/bin/env bash
# make site: the documentation as a static site (MkDocs, site/mkdocs.yml),
# into $CARGO_TARGET_DIR/site/, from README.md (its front page) and docs/.
# Strict: a link to a page or an anchor that does not exist, or a page left
# out of the navigation, fails the build. Links to other hosts are not
# followed (the machines that build it reach no other host).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

venv=${MANDATE_SITE_VENV:-$HOME/.cache/mandate/venv-site}
if ! cmp -s site/requirements.txt "$venv/requirements.txt" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r site/requirements.txt
    cp site/requirements.txt "$venv/requirements.txt"
fi

out=$CARGO_TARGET_DIR/site
staged=$(mktemp -d)
trap 'rm -rf "$staged"' EXIT
python3 scripts/site-stage.py . "$staged"
rm -rf "$out"
MANDATE_SITE_SRC=$staged MANDATE_SITE_OUT=$out "$venv/bin/mkdocs" build -f site/mkdocs.yml 2>&1 | { grep -v "^INFO" || true; }
# What the strict build cannot see: every href and src in the built pages
# that stays on the site names a file that exists, and its #fragment an id
# in that file.
python3 scripts/site-links.py "$out"

# Both checks must be able to fail: a page with a link to a missing page,
# one to a missing anchor, and a broken href in a built page, each refused.
planted=$(mktemp -d)
trap 'rm -rf "$staged" "$planted"' EXIT
for link in 'nope.md' 'agents.md#no-such-heading' '#nowhere'; do
    rm -rf "$planted"/*
    python3 scripts/site-stage.py . "$planted/src"
    echo "A planted fault: [this link]($link)." >> "$planted/src/demo.md"
    if MANDATE_SITE_SRC=$planted/src MANDATE_SITE_OUT=$planted/out \
        "$venv/bin/mkdocs" build -f site/mkdocs.yml >/dev/null 2>&1; then
        echo "site: a link to $link was not refused" >&2
        exit 1
    fi
done
cp -r "$out" "$planted/built"
sed -i 's#href="agents.html#href="agents.html\#no-such-heading#' "$planted/built/index.html"
if python3 scripts/site-links.py "$planted/built" >/dev/null 2>&1; then
    echo "site: site-links.py took a broken anchor" >&2
    exit 1
fi
echo "site: $out/index.html (a missing page, a missing anchor and a broken href were each refused)"
