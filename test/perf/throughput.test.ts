import assert from "node:assert/strict";
import { test } from "node:test";
import {
  bottleneck,
  completionWireBytes,
  directionThroughput,
  limitTerms,
  lineRate,
  maxMinShare,
  outstandingReadsLimit,
  readThroughput,
  transferTime,
  wireRatio,
  writeThroughput,
} from "../../src/perf/index.js";

const f = (x: number, d: number) => x.toFixed(d);
const MiB = 1 << 20;
const GEN4X16 = { speed: 16, width: 16 };
const GEN5X16 = { speed: 32, width: 16 };

test("§6 worked numbers: writes and completions at Gen3/4/5 x16", () => {
  const w = (link: typeof GEN4X16, payload: number) =>
    f(writeThroughput(link, { payload, header: { dw: 4 } }).gbps, 3);
  const c = (link: typeof GEN4X16, payload: number) =>
    f(
      directionThroughput(link, { tlps: [{ payload, count: 1, wireBytes: completionWireBytes(payload) }] })
        .gbps,
      3,
    );
  assert.equal(w({ speed: 8, width: 16 }, 256), "14.404");
  assert.equal(w(GEN4X16, 256), "28.807");
  assert.deepEqual(
    [256, 128, 64].map((p) => c(GEN4X16, p)),
    ["29.225", "27.250", "24.006"],
  );
  assert.deepEqual(
    [256, 512].map((p) => w(GEN5X16, p)),
    ["57.614", "60.194"],
  );
  assert.deepEqual(
    [256, 128, 64].map((p) => c(GEN5X16, p)),
    ["58.449", "54.500", "48.012"],
  );
  assert.equal(w(GEN4X16, 64), "22.915");
});

test("BW-15 Gen5 x16 1 MiB reads, MRRS 512: 256-B completions → 58.449, 64-B → 48.012; requests take 49152 B per MiB", () => {
  const r = readThroughput(GEN5X16, { length: MiB, mrrs: 512, maxCpl: 256, rcb: 64, policy: "max" });
  assert.equal(f(r.data.gbps, 3), "58.449");
  assert.equal(r.requests, 2048);
  assert.equal(r.completions, 4096);
  assert.equal(r.requestDirectionBytes, 49152); // 2048 × (16 + 8)
  assert.equal(f(r.requestOverhead * 100, 2), "4.69");
  const small = readThroughput(GEN5X16, { length: MiB, mrrs: 512, maxCpl: 64, rcb: 64, policy: "max" });
  assert.equal(f(small.data.gbps, 3), "48.012");
  assert.equal(small.requestDirectionBytes, 49152);
  // a root complex answering with RCB-sized completions gives the same 64-B figure
  const rc = readThroughput(GEN5X16, { length: MiB, mrrs: 512, rcb: 64, policy: "rcb" });
  assert.equal(f(rc.data.gbps, 3), "48.012");
});

test("BW-16 bidirectional Gen5 x16 256-B writes, NFM, dllpPerTlp 0/0.5/1/2 → 57.614/56.803/56.014/54.500; FM no DLLP term", () => {
  const got = [0, 0.5, 1, 2].map((d) =>
    f(writeThroughput(GEN5X16, { payload: 256, bidirectional: true, dllpPerTlp: d }).gbps, 3),
  );
  assert.deepEqual(got, ["57.614", "56.803", "56.014", "54.500"]);
  // default dllpPerTlp is 1
  assert.equal(f(writeThroughput(GEN5X16, { payload: 256, bidirectional: true }).gbps, 3), "56.014");
  // unidirectional data direction is unaffected
  assert.equal(f(writeThroughput(GEN5X16, { payload: 256, dllpPerTlp: 2 }).gbps, 3), "57.614");
  const fm = { speed: 64, width: 16 };
  assert.equal(
    writeThroughput(fm, { payload: 256, bidirectional: true, dllpPerTlp: 2 }).gbps,
    writeThroughput(fm, { payload: 256 }).gbps,
  );
});

test("BW-19 32 tags, MRRS 512, RTT 1 µs → 16.384 GB/s, limit 'outstanding reads'; 256 tags → link (29.225)", () => {
  const link = readThroughput(GEN4X16, { mrrs: 512, maxCpl: 256 }).data.gbps;
  assert.equal(f(link, 3), "29.225");
  const with32 = bottleneck([
    { limit: "link", gbps: link },
    ...limitTerms({ reads: { tags: 32, mrrs: 512, rttUs: 1 } }),
  ]);
  assert.equal(f(with32.gbps, 3), "16.384");
  assert.equal(with32.limit, "outstanding reads");
  const with256 = bottleneck([
    { limit: "link", gbps: link },
    ...limitTerms({ reads: { tags: 256, mrrs: 512, rttUs: 1 } }),
  ]);
  assert.equal(with256.limit, "link");
  assert.equal(f(with256.gbps, 3), "29.225");
  // §5.4 second example and the requester's own cap
  assert.equal(f(outstandingReadsLimit({ tags: 256, mrrs: 512, rttUs: 2 }), 3), "65.536");
  assert.equal(
    f(outstandingReadsLimit({ tags: 256, maxOutstandingReads: 32, mrrs: 512, rttUs: 1 }), 3),
    "16.384",
  );
});

test("BW-20 two equal flows on a Gen4 x16 direction (256-B writes) → 14.404 each; one capped at 5.0 → other 23.807", () => {
  const cap = lineRate(16, 16);
  const ratio = wireRatio(256, { dw: 4 });
  const links = [{ id: "gen4", capacityGBps: cap }];
  const a = maxMinShare(links, [
    { id: "a", links: [{ link: "gen4", wireRatio: ratio }] },
    { id: "b", links: [{ link: "gen4", wireRatio: ratio }] },
  ]);
  assert.equal(f(a.get("a")!, 3), "14.404");
  assert.equal(f(a.get("b")!, 3), "14.404");
  const b = maxMinShare(links, [
    { id: "a", links: [{ link: "gen4", wireRatio: ratio }], capGBps: 5 },
    { id: "b", links: [{ link: "gen4", wireRatio: ratio }] },
  ]);
  assert.equal(f(b.get("a")!, 3), "5.000");
  assert.equal(f(b.get("b")!, 3), "23.807");
});

test("BW-21 64-B and 256-B write flows sharing a Gen4 x16 direction → equal payload rate r = 12.763", () => {
  // r × (88/64 + 280/256) = 31.5077
  const shares = maxMinShare(
    [{ id: "l", capacityGBps: lineRate(16, 16) }],
    [
      { id: "small", links: [{ link: "l", wireRatio: wireRatio(64, { dw: 4 }) }] },
      { id: "large", links: [{ link: "l", wireRatio: wireRatio(256, { dw: 4 }) }] },
    ],
  );
  assert.equal(f(shares.get("small")!, 3), "12.763");
  assert.equal(f(shares.get("large")!, 3), "12.763");
});

test("BW-22 1 GiB at Gen5 x16 256-B writes with 2 µs latency → 18.639 ms", () => {
  const t = writeThroughput(GEN5X16, { payload: 256 }).gbps;
  assert.equal(f(transferTime(1 << 30, t, 2) * 1000, 3), "18.639");
  assert.equal(transferTime(1 << 30, t), transferTime(1 << 30, t, 2));
});
