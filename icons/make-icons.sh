#!/usr/bin/env bash
# Draws the Mandate icon set with ImageMagick (no SVG renderer needed):
# a seal, the user's signature, over two chain links, the delegation.
# The same design is mandate.svg, which the interface shows.
set -euo pipefail
cd "$(dirname "$0")"
convert -size 1024x1024 xc:none \
    \( -size 896x896 gradient:'#3b3fd8-#1e1b6e' \
       \( -size 896x896 xc:none -fill white -draw 'roundrectangle 0,0 895,895 200,200' \) \
       -compose DstIn -composite \) -geometry +64+64 -compose Over -composite \
    -fill none -stroke white -strokewidth 56 \
    -draw "translate 386,560 rotate -35 roundrectangle -150,-90 150,90 90,90" \
    -stroke '#9fe3c6' \
    -draw "translate 638,560 rotate -35 roundrectangle -150,-90 150,90 90,90" \
    -stroke none -fill white -draw 'circle 704,300 704,418' \
    -fill none -stroke '#1e1b6e' -strokewidth 40 -draw "stroke-linecap round stroke-linejoin round fill none path 'M 648,302 L 688,342 L 766,258'" \
    icon-1024.png
convert icon-1024.png -resize 32x32 -depth 8 PNG32:32x32.png
convert icon-1024.png -resize 128x128 -depth 8 PNG32:128x128.png
convert icon-1024.png -resize 256x256 -depth 8 PNG32:128x128@2x.png
convert icon-1024.png -resize 512x512 -depth 8 PNG32:icon.png
convert icon-1024.png -define icon:auto-resize=256,128,64,48,32,16 icon.ico
rm icon-1024.png
