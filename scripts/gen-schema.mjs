#!/usr/bin/env node
// Writes docs/scenario.schema.json from the zod schema (test/scenario/schema.test.ts keeps it current).
import { writeFileSync } from "node:fs";
import { register } from "tsx/esm/api";

register();
const { scenarioJsonSchema } = await import("../src/scenario/schema.ts");
writeFileSync(
  new URL("../docs/scenario.schema.json", import.meta.url),
  `${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`,
);
