"""Every `code` the API can answer with, in one place.

The envelope's `code` is what a client program branches on, so the list is
part of the contract: docs/api.md ("Error codes") documents each one, and
wallet_project/tests/test_error_codes.py fails when the code can raise a
code that is not here, when a code here can no longer be raised, or when
the docs and this list disagree. Apps raise their codes through their own
exception classes (``default_code``, as DRF does); this module only lists
them, so it imports nothing of theirs.

``message`` is the default wording where the raiser has nothing more
specific to say (DRF's own generic details, and the Django-level handlers
in wallet_project/exceptions.py): it says what went wrong and what to do.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorCode:
    status: int
    meaning: str
    action: str
    message: str | None = None


ERROR_CODES: dict[str, ErrorCode] = {
    # --- the request itself ----------------------------------------------------------------
    "validation_error": ErrorCode(
        400,
        "A field or query parameter is missing or invalid; `errors` names each one and says why.",
        "Fix the fields named in `errors` and send again; nothing was stored and the key is still free.",
    ),
    "parse_error": ErrorCode(
        400,
        "The body is not JSON the service accepts (malformed, duplicate keys, too deep, NUL, a huge number).",
        "Send one JSON object, UTF-8, without duplicate keys; nothing was stored.",
    ),
    "bad_request": ErrorCode(
        400,
        "The request could not be read at all: a Host header the service does not serve, a header sent twice "
        "that may be sent once (Host, Authorization), a header holding a NUL byte, or the request line "
        "or a header the service reads (Authorization, Idempotency-Key, Content-Type, Accept) holding bytes "
        "outside printable ASCII, which the message names. Any other control byte in a header the service does "
        "not read (User-Agent, Cookie, X-Request-ID) is a 400 with no body at all, answered before the service "
        "sees the request.",
        "Check the URL and headers your HTTP client sends.",
        message="Bad request: the request could not be read (check the URL, the Host header, and that no header "
        "is sent twice or holds control characters).",
    ),
    "payload_too_large": ErrorCode(
        413,
        "The body is larger than the service accepts (API_MAX_BODY_BYTES, 64 KiB by default).",
        "Send a smaller body; metadata is limited to 4 KiB.",
    ),
    # What the edge (nginx, ops/nginx.conf) answers itself, before Django sees
    # the request: wallet_project/edge.py writes these into its configuration.
    "request_timeout": ErrorCode(
        408,
        "The request did not arrive whole in time (the edge waits 60 s between reads); nothing was read.",
        "Send the whole request again, with the same idempotency key.",
        message="Request timeout: the request did not arrive in time; send it again, whole.",
    ),
    "uri_too_long": ErrorCode(
        414,
        "The request line is longer than the edge reads (8 KiB); nothing was read.",
        "Send a shorter URL: ids are UUIDs and query parameters are short.",
        message="URI too long: the request line must fit in 8 KiB.",
    ),
    "headers_too_large": ErrorCode(
        431,
        "A header line, or the headers together, are larger than the edge reads (8 KiB a line); nothing was read.",
        "Send smaller headers.",
        message="Request headers too large: each header line must fit in 8 KiB.",
    ),
    "unsupported_media_type": ErrorCode(
        415,
        "The body is not `application/json` (UTF-8), or its Content-Type names another charset or an unknown one.",
        "Send `Content-Type: application/json` and a UTF-8 JSON body.",
    ),
    "not_acceptable": ErrorCode(
        406,
        "The `Accept` header asks for a format the API does not offer (and no `format=` names one, which would win).",
        "Accept `application/json` (or send no `Accept` header).",
    ),
    "method_not_allowed": ErrorCode(
        405,
        "The path exists but not under this method; the `Allow` header lists the methods it takes.",
        "Use one of the methods in `Allow`.",
    ),
    "not_found": ErrorCode(
        404,
        "No such path, or a malformed id in it (the message names the id); API paths have no trailing slash.",
        "Check the path against docs/api.md; ids are UUIDs.",
        message="No such API path: see /api/docs/ for the paths there are.",
    ),
    # --- who is calling --------------------------------------------------------------------
    "not_authenticated": ErrorCode(
        401,
        "No API key was sent.",
        "Send `Authorization: Token <key>` with every /api/ request.",
        message="No API key was sent: send it as `Authorization: Token <key>`.",
    ),
    "authentication_failed": ErrorCode(
        401,
        "The `Authorization` header is not a live API key: unknown, revoked, of a deactivated client, or not "
        "the Token scheme.",
        "Send `Authorization: Token <key>` with a live key; ask the operator for a new key if yours was revoked.",
    ),
    "permission_denied": ErrorCode(
        403,
        "The API client lacks the permission this action needs; the message names it.",
        "Ask the operator to put the client in a group that has the permission; do not retry as is.",
        message="Permission denied: this account may not do this.",
    ),
    "throttled": ErrorCode(
        429,
        "The client is over one of its rate limits (or its address over the limit of failed "
        "authentications); nothing was stored.",
        "Wait `Retry-After` seconds, then send the same request again (same idempotency key).",
    ),
    # --- wallets and transactions ----------------------------------------------------------
    "wallet_not_found": ErrorCode(
        404,
        "No wallet of this client has that id (another client's wallet answers the same); nothing was stored.",
        "Check the wallet id; the idempotency key is still free.",
    ),
    "wallet_exists": ErrorCode(
        409,
        "This client already has a wallet for that userId in that currency.",
        "Use the existing wallet: `GET /api/wallets?userId=` finds it.",
    ),
    "transaction_not_found": ErrorCode(
        404,
        "No transaction of this client has that idempotency key, or none it may see has that reference.",
        "Check the key or reference; a key that was refused with 400 or 404 was never stored.",
    ),
    "batch_not_found": ErrorCode(
        404,
        "No batch of this client has that id (another client's answers the same).",
        "Check the batch id the 201 answered with.",
    ),
    "hold_not_found": ErrorCode(
        404,
        "No hold of this client has that id (another client's answers the same); for a set, `data.holdIds` names them.",
        "Check the hold id the 201 answered with; nothing changed.",
    ),
    "webhook_endpoint_not_found": ErrorCode(
        404,
        "No webhook endpoint of this client has that id (another client's answers the same).",
        "List your endpoints with `GET /api/webhook-endpoints` and use one of their ids.",
    ),
    "webhook_endpoints_limit": ErrorCode(
        409,
        "This client has as many webhook endpoints as a client may (WEBHOOK_MAX_ENDPOINTS_PER_CLIENT, 10 by default).",
        "Delete one you no longer use (`DELETE /api/webhook-endpoints/{id}`), or send several event types to one.",
    ),
    # --- money requests --------------------------------------------------------------------
    "batch_failed": ErrorCode(
        422,
        "A payout of an atomic batch broke a rule, so no payout moved; `data` is the batch, "
        "`failedPayoutIndex` and `errorCode` name the payout and the rule.",
        "Fix that payout (or drop it), then send the batch again under a new batch key and new payout keys.",
    ),
    "insufficient_balance": ErrorCode(
        422,
        "The source wallet holds less than the amount. A FAILED transaction is stored (`data`).",
        "Fund the wallet, then send a new request under a new idempotency key; this key replays the failure.",
    ),
    "wallet_inactive": ErrorCode(
        422,
        "A wallet of the movement is frozen. A FAILED transaction is stored (`data`).",
        "Ask support why it is frozen; once unfrozen, send a new request under a new key.",
    ),
    "currency_mismatch": ErrorCode(
        422,
        "The two wallets hold different currencies. A FAILED transaction is stored (`data`).",
        "Transfer between wallets of one currency, under a new key.",
    ),
    "balance_limit_exceeded": ErrorCode(
        422,
        "The movement would take a balance beyond NUMERIC(20,2). A FAILED transaction is stored (`data`).",
        "Move a smaller amount, under a new key.",
    ),
    "limit_exceeded": ErrorCode(
        422,
        "The movement would pass a limit, which the message names with the room left: a wallet tier's cap "
        "(single or daily credit or debit, balance), the client's per-movement or daily maximum, or what one "
        "client's wallets may hold in a currency from deposits. A FAILED transaction is stored (`data`).",
        "Move what the room allows, wait for the next business day, raise the wallet's tier, or ask the operator "
        "about the limit; then send a new request under a new key.",
    ),
    "wallet_restricted": ErrorCode(
        422,
        "The source wallet is post-no-debit or the destination post-no-credit (docs/limits.md). A FAILED "
        "transaction is stored (`data`).",
        "Lift the restriction (PATCH /api/wallets/{id}) once the customer is verified, then send a new request "
        "under a new key.",
    ),
    "idempotency_key_reused": ErrorCode(
        422,
        "This idempotency key was already used for a different request (other amount, wallets, type or "
        "metadata; for a hold's capture, void or extension, other holds or another action); nothing moved.",
        "Use a new key for a new request; to see the first one, `GET /api/transfer/{key}`.",
    ),
    "idempotency_key_in_use": ErrorCode(
        409,
        "A request with this key is still being processed; nothing moved twice.",
        "Wait `Retry-After` seconds and send the same request again.",
    ),
    # --- the service -----------------------------------------------------------------------
    "service_unavailable": ErrorCode(
        503,
        "PostgreSQL cannot be reached (or, on /health, a dependency is down); nothing was half-done.",
        "Wait `Retry-After` seconds and send the same request with the same idempotency key: it is safe.",
    ),
    "bad_gateway": ErrorCode(
        502,
        "The edge could not reach the application (restarting or down); the request may not have been read.",
        "Send the same request again with the same idempotency key: it is safe.",
        message="Bad gateway: the service is restarting; send the same request again with the same idempotency key.",
    ),
    "gateway_timeout": ErrorCode(
        504,
        "The application did not answer within 60 s; the request may or may not have been carried out.",
        "Send the same request again with the same idempotency key: it answers what happened, never twice.",
        message="Gateway timeout: no answer in time; send the same request again with the same idempotency key.",
    ),
    "internal_error": ErrorCode(
        500,
        "A bug in the service; nothing was half-done. The `X-Request-ID` header finds it in the logs.",
        "Retry with the same key (safe); report the `X-Request-ID` if it persists.",
        message="Internal server error: nothing was half-done; retry with the same key, and report the X-Request-ID.",
    ),
    # --- staff actions (admin) -------------------------------------------------------------
    "not_reversible": ErrorCode(
        409,
        "Only a COMPLETED transaction can be reversed, and only once (admin).",
        "Check the transaction's status in the admin.",
    ),
    "hold_not_open": ErrorCode(
        409,
        "The hold has ended (captured, voided or expired) or was refused when placed (FAILED); `data` is the hold, "
        "saying how. A set: `data.holds` lists those, and none of the set ended.",
        "Read the hold (`GET /api/holds/{id}`); a retry of the request that ended it, with its key, answers again.",
    ),
    "capture_exceeds_hold": ErrorCode(
        422,
        "A capture asked to move more than the hold reserves; nothing changed, the hold is still open.",
        "Capture at most the hold's amount (or omit `amount` to capture all of it).",
    ),
    "hold_expiry_not_later": ErrorCode(
        422,
        "An extension must move the hold's expiry later than it is; nothing changed.",
        "Send an `expiresAt` (or `expiresInSeconds`) after the hold's current `expiresAt`.",
    ),
}


def default_message(code: str) -> str | None:
    """The registry's own wording for `code`, or None where the raiser's is used."""
    entry = ERROR_CODES.get(code)
    return entry.message if entry else None
