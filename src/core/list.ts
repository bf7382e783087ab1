/**
 * Ordered lists kept in arrays. `unshift` and `splice` leave V8's fast paths even for a list of
 * one, which made them the hottest lines of an export cycle; these take the cheap way when the
 * list is empty or the item is last.
 */

/** Removes the first `item` from `list`, keeping the others' order; false when absent. */
export function removeItem<T>(list: T[], item: T): boolean {
  const i = list.indexOf(item);
  if (i < 0) return false;
  if (i === list.length - 1) list.pop();
  else list.splice(i, 1);
  return true;
}

/** Inserts `item` at the head of `list` (`list_add`: newest first). */
export function addFirst<T>(list: T[], item: T): void {
  if (list.length === 0) list.push(item);
  else list.unshift(item);
}
