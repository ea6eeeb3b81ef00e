// What the parts of the local DigitalOcean API (harness/doApi.ts) share: DigitalOcean's error
// body, the route type, the droplet record, and actions, which the provider polls.
import type { Droplet } from "../sandbox";

export type Json = Record<string, unknown>;
/** A route's answer: the status and the JSON body (undefined: none). */
export type Answer = [number, unknown];
/** [method, path pattern, handler(the pattern's match, the JSON body, the query)]. */
export type Route = [
  string,
  RegExp,
  (m: string[], body: Json, query: URLSearchParams) => Answer | Promise<Answer>,
];

/** The error body DigitalOcean sends: an id, a message and the request's id. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly id: string,
    message: string,
  ) {
    super(message);
  }
}
export const notFound = () =>
  new ApiError(404, "not_found", "The resource you were accessing could not be found.");
export const unprocessable = (message: string) => new ApiError(422, "unprocessable_entity", message);

/** A request field that must be a string; anything else counts as missing. */
export const text = (v: unknown): string => (typeof v === "string" ? v : "");

/** The value under `key`, or DigitalOcean's 404. */
export function get<K, V>(map: Map<K, V>, key: K): V {
  const value = map.get(key);
  if (value === undefined) throw notFound();
  return value;
}

export interface DropletRecord {
  json: Json;
  sandbox?: Droplet;
  /** Settles once the sandbox droplet is up (or failed to start). */
  started: Promise<void>;
}

/** What every part of the API uses: the clock, the id counter, the work still running, actions. */
export interface ApiContext {
  now: () => string;
  /** The next id (positive integers, as the provider requires of droplets, keys and actions). */
  nextId: () => number;
  /** Work started by a request that has not finished (settled() waits for it). */
  pending: Promise<unknown>[];
  /** An action that finishes when `work` does; the provider polls it until completed_at is set. */
  startAction: (type: string, resourceType: string, work: () => Promise<void>) => Json;
}

/** The context, with its actions and their route (`GET /v2/actions/{id}`, the one the provider polls). */
export function apiContext(): { ctx: ApiContext; routes: Route[] } {
  let nextId = 1000;
  const pending: Promise<unknown>[] = [];
  const actions = new Map<number, Json>();
  const now = () => new Date().toISOString();
  const ctx: ApiContext = {
    now,
    nextId: () => nextId++,
    pending,
    startAction: (type, resourceType, work) => {
      const action: Json = {
        id: nextId++,
        status: "in-progress",
        type,
        started_at: now(),
        completed_at: null,
        resource_id: 0,
        resource_type: resourceType,
        region_slug: null,
      };
      actions.set(Number(action.id), action);
      pending.push(
        work().then(
          () => {
            action.status = "completed";
            action.completed_at = now();
          },
          (e: Error) => {
            // completed_at stays null: the provider fails on status "errored".
            action.status = "errored";
            console.error(`local DigitalOcean API: ${type} (action ${String(action.id)}): ${e.message}`);
          },
        ),
      );
      return action;
    },
  };
  const routes: Route[] = [
    ["GET", /^\/v2\/actions\/(\d+)$/, ([, id]) => [200, { action: get(actions, Number(id)) }]],
  ];
  return { ctx, routes };
}
