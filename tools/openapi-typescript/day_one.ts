// What a TypeScript client needs typed, checked against the types that
// openapi-typescript generates from /api/schema/ (wallet.d.ts, by ./check).
import type { components, paths } from "./wallet";

type Transfer = paths["/api/transfer"]["post"];

// A replay (200) is told apart from the first answer (201) by its required header.
const replayed: Transfer["responses"][200]["headers"]["Idempotent-Replayed"] = "true";
type FirstAnswer = Transfer["responses"][201]["content"]["application/json"];

// Amounts are decimal strings, never numbers.
const request: Transfer["requestBody"] extends { content: { "application/json": infer B } } ? B : never = {
  sourceWalletId: "5b1f...",
  destinationWalletId: "9c2e...",
  amount: "250.50",
};

// Errors: the code is a closed enum; data has the shape of the operation's errors.
// A transfer's 422 carries the FAILED transaction, a hold's the FAILED hold: no narrowing needed.
type TransferRefused = Transfer["responses"][422]["content"]["application/json"];
function failedTransaction(error: TransferRefused): string | undefined {
  return error.code === "insufficient_balance" ? error.data?.reference : undefined;
}
type HoldRefused = paths["/api/holds"]["post"]["responses"][422]["content"]["application/json"];
function failedHold(error: HoldRefused): string | undefined {
  return error.data ? `${error.data.id} ${error.data.status}` : undefined;
}

// Events: one schema per type, narrowed by `type`.
function describe(event: components["schemas"]["Event"]): string {
  switch (event.type) {
    case "batch.finished":
      return `${event.data.batchId}: ${event.data.completedAmount} of ${event.data.totalAmount}`;
    case "wallet.frozen":
    case "wallet.unfrozen":
    case "wallet.tier_changed":
      return `${event.data.id} active=${event.data.isActive} tier=${event.data.tier}`;
    case "hold.created":
    case "hold.captured":
    case "hold.voided":
    case "hold.expired":
    case "hold.extended":
      return `${event.data.id} ${event.data.status} ${event.data.amount} until ${event.data.expiresAt}`;
    case "ledger.checkpoint":
      return event.data.checkpoint;
    default:
      return `${event.data.reference} ${event.data.status} ${event.data.amount}`;
  }
}

// Pages: the cursor to pass back as it is.
type HistoryPage = components["schemas"]["WalletHistoryEntryPage"];
const nextCursor = (page: HistoryPage): string | null => page.nextCursor;

export { describe, failedHold, failedTransaction, nextCursor, replayed, request };
export type { FirstAnswer };
