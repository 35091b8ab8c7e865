#!/bin/sh
# without-host-webkit.sh COMMAND...: runs COMMAND in a mount namespace of
# its own in which the host's WebKitGTK, JavaScriptCore and GTK 3 are
# gone: each of their library files reads as /dev/null, and WebKit's
# directory of helper processes is empty. What runs there runs on what it
# carries, as the AppImage must (tests/webdriver/appimage.mjs, which checks
# that it runs so). Needs root, as `make package` runs.
set -eu
multiarch=$(gcc -print-multiarch)
export MANDATE_HOST_WEBKIT=hidden
exec unshare --mount --propagation private sh -eu -c '
    lib=/usr/lib/$1; shift
    for file in "$lib"/libwebkit2gtk-4.1.so.0.* "$lib"/libjavascriptcoregtk-4.1.so.0.* \
        "$lib"/libgtk-3.so.0.* "$lib"/libgdk-3.so.0.*; do
        mount --bind /dev/null "$file"
    done
    mount -t tmpfs -o ro,size=1k none "$lib/webkit2gtk-4.1"
    exec "$@"' sh "$multiarch" "$@"
