/** The global list of exported dma-bufs, as a Set of them would behave. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { DmaBuf, DmaBufList } from "../../src/dmabuf/dma-buf.js";

const bufs = (n: number) =>
  Array.from({ length: n }, (_, i) => new DmaBuf(i + 1, 4096n, {} as never, {}, "test", {} as never));

test("db_list: oldest first, each buffer once, deletes anywhere in the list", () => {
  const [a, b, c] = bufs(3);
  const list = new DmaBufList();
  list.add(a);
  list.add(b);
  list.add(c);
  list.add(b); // already listed: no change
  assert.deepEqual([...list], [a, b, c]);
  assert.equal(list.size, 3);
  list.delete(b);
  assert.deepEqual([...list], [a, c]);
  assert.equal(list.has(b), false);
  list.delete(b); // not listed: no change
  list.delete(a);
  list.delete(c);
  assert.deepEqual([...list], []);
  assert.equal(list.size, 0);
  list.add(b);
  assert.deepEqual([...list], [b]);
});

test("db_list: the buffer being visited may be deleted during a walk", () => {
  const all = bufs(4);
  const list = new DmaBufList();
  for (const x of all) list.add(x);
  const seen = [];
  for (const x of list) {
    seen.push(x);
    list.delete(x);
  }
  assert.deepEqual(seen, all);
  assert.equal(list.size, 0);
});

test("db_list: a buffer on one machine's list is not on another's, and cannot be added to it", () => {
  const [a] = bufs(1);
  const one = new DmaBufList();
  const two = new DmaBufList();
  one.add(a);
  assert.equal(two.has(a), false);
  two.delete(a); // not on it: no change to either
  assert.deepEqual([...one], [a]);
  assert.throws(() => two.add(a), /already on another machine's dma-buf list/);
  one.delete(a);
  two.add(a);
  assert.deepEqual([...two], [a]);
});

test("property: db_list agrees with a Set under random adds and deletes", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 5 })), { maxLength: 60 }),
      (ops) => {
        const pool = bufs(6);
        const list = new DmaBufList();
        const set = new Set<DmaBuf>();
        for (const [add, i] of ops) {
          if (add) {
            list.add(pool[i]);
            set.add(pool[i]);
          } else {
            list.delete(pool[i]);
            set.delete(pool[i]);
          }
          assert.deepEqual([...list], [...set]);
          assert.equal(list.size, set.size);
          for (const x of pool) assert.equal(list.has(x), set.has(x));
        }
      },
    ),
  );
});
