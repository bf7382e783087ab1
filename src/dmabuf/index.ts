export * from "./phys-vec.js";
