// The app's one live region: each status change (a request arriving, a
// decision sent, a revocation confirmed, the connection lost) said once to
// assistive technology. The region stays in the page from the start, so
// screen readers hear each change to its text.

export const live = $state({ text: '' });

let queued: string[] = [];
let pending: ReturnType<typeof setTimeout> | undefined;

/**
 * Says `text` in the live region. The region is emptied first, so the
 * same words again are said again; what comes within the same moment is
 * said together, in order, so that nothing is lost.
 */
export function announce(text: string) {
  queued.push(text);
  if (pending !== undefined) return;
  live.text = '';
  pending = setTimeout(() => {
    live.text = queued.join('. ');
    queued = [];
    pending = undefined;
  }, 60);
}
