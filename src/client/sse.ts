// A parser of server-sent events (text/event-stream, as the HTML standard defines it) for
// GET /watch: lines of `field: value`, events separated by a blank line, comments starting
// with ':'. Bounded: a line or an event longer than the limit is an error, not a growing buffer.
import { ManateeError } from '../errors.js';

export interface SseEvent {
  /** "message" when the event named none. */
  readonly event: string;
  readonly data: string;
  readonly id: string | null;
}

/** A malformed or oversized event stream (MANATEE_ERR_CLIENT_WATCH, as a failure to follow a peer). */
export class SseParseError extends ManateeError {
  constructor(message: string) {
    super('MANATEE_ERR_CLIENT_WATCH', message);
  }
}

export class SseParser {
  private buffer = '';
  private eventName = '';
  private data: string[] = [];
  private dataBytes = 0;
  private lastId: string | null = null;
  /** The server's `retry:` advice in ms, when it gave one. */
  retryMs: number | null = null;

  constructor(private readonly eventBytesMax: number) {}

  /** Feeds a chunk of text; returns the events it completed. */
  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const out: SseEvent[] = [];
    for (;;) {
      const nl = this.buffer.search(/\r\n|\r|\n/);
      if (nl < 0) break;
      const line = this.buffer.slice(0, nl);
      const sepLength = this.buffer.startsWith('\r\n', nl) ? 2 : 1;
      // A lone '\r' at the end of a chunk may be the first half of '\r\n': wait for more.
      if (this.buffer[nl] === '\r' && sepLength === 1 && nl === this.buffer.length - 1) break;
      this.buffer = this.buffer.slice(nl + sepLength);
      const e = this.line(line);
      if (e !== null) out.push(e);
    }
    if (this.buffer.length > this.eventBytesMax) throw new SseParseError(`an event-stream line is longer than ${this.eventBytesMax} bytes`);
    return out;
  }

  private line(line: string): SseEvent | null {
    if (line === '') {
      if (this.data.length === 0) {
        this.eventName = '';
        return null;
      }
      const e: SseEvent = { event: this.eventName === '' ? 'message' : this.eventName, data: this.data.join('\n'), id: this.lastId };
      this.eventName = '';
      this.data = [];
      this.dataBytes = 0;
      return e;
    }
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.eventName = value;
        break;
      case 'data':
        this.dataBytes += value.length + 1;
        if (this.dataBytes > this.eventBytesMax) throw new SseParseError(`an event is longer than ${this.eventBytesMax} bytes`);
        this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.lastId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        // Unknown fields are ignored, as the standard says.
        break;
    }
    return null;
  }
}
