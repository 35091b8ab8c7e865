// What the virtual lists (the inbox, the activity) share: rows of a fixed
// height, of which only those in view are in the page, and a keyboard that
// moves through the whole list.

/** The row that `key` moves to from row `index`, or `null` for any other key. */
export function keyTarget(key: string, index: number, count: number, viewHeight: number, rowHeight: number): number | null {
  const page = Math.max(1, Math.floor(viewHeight / rowHeight) - 1);
  const to: Record<string, number> = {
    ArrowDown: index + 1, ArrowUp: index - 1, PageDown: index + page, PageUp: index - page, Home: 0, End: count - 1,
  };
  return key in to ? Math.min(count - 1, Math.max(0, to[key])) : null;
}

/** Scrolls `list` just enough to show row `index`. */
export function scrollToRow(list: HTMLElement, index: number, rowHeight: number) {
  if (index * rowHeight < list.scrollTop) list.scrollTop = index * rowHeight;
  else if ((index + 1) * rowHeight > list.scrollTop + list.clientHeight) list.scrollTop = (index + 1) * rowHeight - list.clientHeight;
}
