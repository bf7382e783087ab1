import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { stringify } from "yaml";
import { InputError } from "../../src/core/errors.js";
import { builtinText } from "../../src/import/builtin.js";
import { parseMachineFile } from "../../src/import/machine-file.js";
import { machineArb } from "../helpers/random-fabric.js";

/** Either a fabric or an InputError that names the file — nothing else may escape. */
function parsesOrNamesTheProblem(text: string): void {
  try {
    parseMachineFile(text, "fuzz.yaml");
  } catch (e) {
    assert.ok(e instanceof InputError, `not an InputError: ${(e as Error)?.stack ?? e}`);
    assert.match(e.message, /^fuzz\.yaml/);
  }
}

test("property: random valid machine descriptions round-trip through YAML text", () => {
  fc.assert(
    fc.property(machineArb, (m) => {
      const { fabric } = parseMachineFile(stringify(m), "random.yaml");
      assert.ok(fabric.devices().length > 0);
    }),
    { numRuns: 100 },
  );
});

test("property: byte-level mutations of a real machine file give a fabric or a schema error, never a crash", () => {
  const base = builtinText("storage-rdma").text;
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ at: fc.nat(base.length - 1), len: fc.nat(8), insert: fc.string({ maxLength: 6 }) }),
        {
          minLength: 1,
          maxLength: 4,
        },
      ),
      (edits) => {
        let t = base;
        for (const e of edits)
          t = t.slice(0, e.at % t.length) + e.insert + t.slice((e.at % t.length) + e.len);
        parsesOrNamesTheProblem(t);
      },
    ),
    { numRuns: 300 },
  );
});

test("property: structurally wrong documents (random JSON) give a schema error naming the path", () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => parsesOrNamesTheProblem(JSON.stringify(v))),
    { numRuns: 300 },
  );
});

test("property: random field values in a valid skeleton are rejected with the field's path or accepted", () => {
  fc.assert(
    fc.property(
      fc.constantFrom("id", "at", "class", "kind", "link", "bars", "acs", "secondaryBus", "mps"),
      fc.oneof(
        fc.string(),
        fc.integer(),
        fc.double(),
        fc.boolean(),
        fc.constant(null),
        fc.array(fc.string()),
      ),
      (field, value) => {
        const doc = {
          name: "x",
          hostBridges: [
            {
              functions: [
                { at: "00.0", kind: "host-bridge", id: "8086:1234" },
                { at: "01.0", id: "1b36:0010", [field]: value },
              ],
            },
          ],
        };
        try {
          parseMachineFile(JSON.stringify(doc), "fuzz.yaml");
        } catch (e) {
          assert.ok(e instanceof InputError, String(e));
          assert.ok(e.message.includes("fuzz.yaml"));
        }
      },
    ),
    { numRuns: 300 },
  );
});

test("an alias without its anchor (`kind: *downstream-port`) is a YAML error naming the file, not a crash (found by the mutation property, seed 1531206578)", () => {
  const text = builtinText("storage-rdma").text.replace("kind: downstream-port", "kind: *downstream-port");
  assert.throws(
    () => parseMachineFile(text, "alias.yaml"),
    (e: unknown) => e instanceof InputError && /^alias\.yaml: YAML: Unresolved alias/.test(e.message),
  );
});
