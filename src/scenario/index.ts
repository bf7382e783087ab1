export * from "./load.js";
export * from "./run.js";
export * from "./schema.js";
