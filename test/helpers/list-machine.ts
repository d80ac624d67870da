// A Raft state machine for tests: the applied entries' data, in order (snapshot and restore as JSON).
import type { AppliedEntry, StateMachine } from '../../src/raft/state-machine.js';

export class ListMachine implements StateMachine {
  items: string[] = [];
  apply(e: AppliedEntry): unknown {
    this.items.push(e.data);
    return this.items.length;
  }
  snapshot(): string {
    return JSON.stringify(this.items);
  }
  restore(data: string): void {
    this.items = JSON.parse(data) as string[];
  }
}
