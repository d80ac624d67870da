// The append messages in flight to one follower, by the last index each carried. Bounded by
// maxInflightMessages: when full, the leader stops sending until acknowledgements free slots.
import { invariant } from './errors.js';

export class Inflights {
  private readonly buf: number[] = [];
  readonly size: number;

  constructor(size: number) {
    invariant(size > 0, 'maxInflightMessages must be positive');
    this.size = size;
  }

  add(lastIndex: number): void {
    invariant(!this.full(), 'cannot add to full inflights');
    const tail = this.buf[this.buf.length - 1];
    invariant(tail === undefined || lastIndex > tail, () => `inflight ${lastIndex} not above ${tail}`);
    this.buf.push(lastIndex);
  }

  /** Frees every message whose last index is <= `to` (acknowledged). */
  freeLE(to: number): void {
    let k = 0;
    while (k < this.buf.length && this.buf[k]! <= to) k++;
    if (k > 0) this.buf.splice(0, k);
  }

  freeFirstOne(): void {
    this.buf.shift();
  }

  full(): boolean {
    return this.buf.length >= this.size;
  }

  count(): number {
    return this.buf.length;
  }

  reset(): void {
    this.buf.length = 0;
  }
}
