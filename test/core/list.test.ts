/** Array-backed ordered lists: removeItem and addFirst against splice and unshift. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { addFirst, removeItem } from "../../src/core/list.js";

test("property: removeItem and addFirst do what indexOf+splice and unshift do", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 4 })), { maxLength: 40 }),
      (ops) => {
        const ours: number[] = [];
        const plain: number[] = [];
        for (const [add, x] of ops) {
          if (add) {
            addFirst(ours, x);
            plain.unshift(x);
          } else {
            const i = plain.indexOf(x);
            if (i >= 0) plain.splice(i, 1);
            assert.equal(removeItem(ours, x), i >= 0);
          }
          assert.deepEqual(ours, plain);
        }
      },
    ),
  );
});
