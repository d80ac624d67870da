// The chaos harness's seeded random source: the shared one (test/helpers/rng.ts).
export { Rng } from '../helpers/rng.js';
