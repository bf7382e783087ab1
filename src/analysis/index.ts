export * from "./demo.js";
export * from "./explain.js";
export * from "./matrix.js";
export { forEachMatrixPair, type MatrixJsonOptions, writeMatrixJson } from "./matrix-fast.js";
export * from "./path-type.js";
export * from "./reasons.js";
export * from "./route.js";
