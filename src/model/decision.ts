// The record of one evaluation of Manatee's rules, as logs and GET /status show it.

/** One evaluation of Manatee's rules: what was decided and why (Patroni-style, one line). */
export interface DecisionRecord {
  readonly kind: string;
  readonly reason: string;
  readonly generation: number | null;
  readonly at: string; // ISO 8601
}
