/** The bulk trace scanner agrees with the object decoder and never throws. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  decodeTlp,
  encodeTlp,
  SCAN_KIND,
  scanTrace,
  type Tlp,
  TlpDecodeError,
  type TlpInput,
  type TlpMode,
  TlpScanner,
} from "../../src/tlp/index.js";
import { fmTlp, nfmTlp } from "./arbitraries.js";

/** A whole TLP: the header plus payload and digest bytes of the sizes Length and TD/TS say. */
function whole(o: TlpInput, fill: number): Uint8Array {
  const h = decodeTlp(encodeTlp(o), { mode: o.mode });
  const data = new Uint8Array(h.info.payloadBytes + h.info.digestBytes).fill(fill);
  return encodeTlp({ ...o, data });
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function expectSame(s: TlpScanner, t: Tlp, offset: number): void {
  const i = t.info;
  assert.equal(s.offset, offset);
  assert.equal(s.size, i.totalBytes);
  assert.equal(s.prefixCount, t.prefixes.length);
  assert.equal(s.headerBytes, i.headerBytes);
  assert.equal(s.typeCode, i.typeCode);
  assert.equal(s.kind, SCAN_KIND[i.kind]);
  assert.equal(s.posted, i.posted);
  assert.equal(s.payloadBytes, i.payloadBytes);
  if (i.kind !== "nop") assert.equal(s.lengthDw, i.lengthDw);
  const h = t.header;
  if (i.kind === "cpl" && "completerId" in h) {
    assert.equal(s.completerId, h.completerId);
    assert.equal(s.requesterId, h.requesterId);
    assert.equal(s.tag, i.tag);
  } else if (i.kind !== "msg" || t.mode === "nfm") {
    if ("requesterId" in h) assert.equal(s.requesterId, h.requesterId);
    if (i.kind !== "nop") assert.equal(s.tag, i.tag ?? -1);
  }
  if (i.address !== null) {
    assert.equal(s.addressHi, Number(i.address >> 32n));
    assert.equal(s.addressLo, Number(i.address & 0xffffffffn));
  }
  if (i.tph) {
    assert.equal(s.st, i.tph.st);
    assert.equal(s.stBits, i.tph.stBits);
    assert.equal(s.ph, i.tph.ph);
  } else assert.equal(s.st, -1);
}

for (const [mode, arb] of [
  ["nfm", nfmTlp],
  ["fm", fmTlp],
] as [TlpMode, fc.Arbitrary<TlpInput>][]) {
  test(`scanner over a ${mode} trace of whole TLPs gives what decodeTlp gives for each`, () => {
    fc.assert(
      fc.property(fc.array(arb, { minLength: 1, maxLength: 8 }), (list) => {
        const parts = list.map((o, k) => whole(o, k));
        const trace = concat(parts);
        const s = new TlpScanner(mode, trace);
        let off = 0;
        for (const p of parts) {
          assert.ok(s.next(), String(s.error));
          const t = decodeTlp(p, { mode, whole: true });
          expectSame(s, t, off);
          assert.deepEqual(s.current().header, t.header);
          off += p.length;
        }
        assert.equal(s.next(), false);
        assert.equal(s.error, null);
        const st = scanTrace(trace, mode);
        assert.equal(st.tlps, parts.length);
        assert.equal(st.bytes, trace.length);
        assert.equal(st.error, null);
      }),
      { numRuns: 500 },
    );
  });
}

test("scanner on random and truncated bytes never throws; it stops with a TlpDecodeError or at the end", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom<TlpMode>("nfm", "fm"), (b, mode) => {
      const s = new TlpScanner(mode, b);
      let n = 0;
      while (s.next()) {
        n++;
        assert.ok(s.offset + s.size <= b.length);
        // every TLP the scanner accepts the object decoder accepts too
        decodeTlp(b.subarray(s.offset, s.offset + s.size), { mode, whole: true });
      }
      assert.ok(s.error === null || s.error instanceof TlpDecodeError);
      assert.ok(n <= b.length / 4);
    }),
    { numRuns: 3000 },
  );
});

test("scanTrace counts by type and reports the error that ended the trace", () => {
  const w = Uint8Array.from([
    0x40, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x0f, 0xfe, 0xe0, 0x00, 0x00, 1, 2, 3, 4,
  ]);
  const trace = concat([w, w, Uint8Array.from([0x03, 0, 0, 0])]);
  const st = scanTrace(trace, "nfm");
  assert.equal(st.tlps, 2);
  assert.deepEqual(st.byType, { MWr32: 2 });
  assert.equal(st.payloadBytes, 8);
  assert.ok(st.error instanceof TlpDecodeError);
  assert.match(st.error.message, /byte 32: reserved Fmt\/Type 0x03/);
});
