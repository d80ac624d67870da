// A small typed listener set. Listeners run synchronously, in registration order, after the
// state machine has finished a change; one that throws is logged and does not stop the others
// (nor the apply loop of Raft, which must never fail because of an observer).
import type { Logger } from '../log.js';

export class Listeners<T> {
  private readonly set = new Set<(event: T) => void>();

  constructor(
    private readonly name: string,
    /** Where a throwing listener is reported; without one, a process warning (stderr) says it. */
    public log: Logger | null,
  ) {}

  /** Adds a listener; returns the function that removes it. */
  add(listener: (event: T) => void): () => void {
    // A copy per registration, so that the same function added twice is called twice
    // and each unsubscribe removes exactly its own registration.
    const wrapped = (event: T): void => {
      listener(event);
    };
    this.set.add(wrapped);
    return () => {
      this.set.delete(wrapped);
    };
  }

  get size(): number {
    return this.set.size;
  }

  emit(event: T): void {
    for (const listener of [...this.set]) {
      try {
        listener(event);
      } catch (err) {
        if (this.log !== null) this.log.error({ err, event: this.name }, `a ${this.name} listener threw; ignored`);
        else process.emitWarning(`a ${this.name} listener threw; ignored: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      }
    }
  }
}
