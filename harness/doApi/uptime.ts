// The local DigitalOcean API's uptime checks and their alerts, kept as the provider sent them.
import { randomUUID } from "node:crypto";
import { ApiError, get, Json, notFound, Route } from "./common";

export function uptimeService(): { routes: Route[]; checks: Map<string, Json>; alerts: Map<string, Json> } {
  const checks = new Map<string, Json>();
  const alerts = new Map<string, Json>();

  function uptimeCheck(body: Json, id: string): Json {
    if (!["http", "https", "ping"].includes(String(body.type)))
      throw new ApiError(422, "unprocessable_entity", "type must be ping, http or https");
    if (typeof body.target !== "string" || !/^https?:\/\/[^/]+/.test(body.target))
      throw new ApiError(422, "unprocessable_entity", "target must be a URL");
    return {
      id,
      name: body.name,
      type: body.type,
      target: body.target,
      regions: Array.isArray(body.regions) ? body.regions : [],
      enabled: body.enabled !== false,
    };
  }

  function uptimeAlert(body: Json, id: string, checkId: string): Json {
    if (!["latency", "down", "down_global", "ssl_expiry"].includes(String(body.type)))
      throw new ApiError(
        422,
        "unprocessable_entity",
        "type must be latency, down, down_global or ssl_expiry",
      );
    if (!["2m", "3m", "5m", "10m", "15m", "30m", "1h"].includes(String(body.period)))
      throw new ApiError(422, "unprocessable_entity", "period must be one of 2m, 3m, 5m, 10m, 15m, 30m, 1h");
    const n = (body.notifications ?? {}) as Json;
    const email = Array.isArray(n.email) ? n.email : [];
    const slack = Array.isArray(n.slack) ? n.slack : [];
    if (!email.length && !slack.length)
      throw new ApiError(422, "unprocessable_entity", "notifications need an email or a Slack channel");
    return {
      id,
      check_id: checkId,
      name: body.name,
      type: body.type,
      threshold: body.threshold ?? 0,
      comparison: body.comparison ?? "",
      period: body.period,
      notifications: { email, slack },
    };
  }

  const alertOf = (checkId: string, id: string) => {
    const alert = get(alerts, id);
    if (alert.check_id !== checkId) throw notFound();
    return alert;
  };

  const routes: Route[] = [
    [
      "POST",
      /^\/v2\/uptime\/checks$/,
      (_m, b) => {
        const check = uptimeCheck(b, randomUUID());
        checks.set(String(check.id), check);
        return [201, { check }];
      },
    ],
    ["GET", /^\/v2\/uptime\/checks\/([\w-]+)$/, ([, id]) => [200, { check: get(checks, id) }]],
    [
      "PUT",
      /^\/v2\/uptime\/checks\/([\w-]+)$/,
      ([, id], b) => {
        get(checks, id);
        const check = uptimeCheck(b, id);
        checks.set(id, check);
        return [200, { check }];
      },
    ],
    [
      "DELETE",
      /^\/v2\/uptime\/checks\/([\w-]+)$/,
      ([, id]) => {
        get(checks, id);
        checks.delete(id);
        for (const [alertId, a] of alerts) if (a.check_id === id) alerts.delete(alertId);
        return [204, undefined];
      },
    ],
    [
      "POST",
      /^\/v2\/uptime\/checks\/([\w-]+)\/alerts$/,
      ([, checkId], b) => {
        get(checks, checkId);
        const alert = uptimeAlert(b, randomUUID(), checkId);
        alerts.set(String(alert.id), alert);
        return [201, { alert }];
      },
    ],
    [
      "GET",
      /^\/v2\/uptime\/checks\/([\w-]+)\/alerts\/([\w-]+)$/,
      ([, checkId, id]) => [200, { alert: alertOf(checkId, id) }],
    ],
    [
      "PUT",
      /^\/v2\/uptime\/checks\/([\w-]+)\/alerts\/([\w-]+)$/,
      ([, checkId, id], b) => {
        alertOf(checkId, id);
        const alert = uptimeAlert(b, id, checkId);
        alerts.set(id, alert);
        return [200, { alert }];
      },
    ],
    [
      "DELETE",
      /^\/v2\/uptime\/checks\/([\w-]+)\/alerts\/([\w-]+)$/,
      ([, checkId, id]) => {
        alertOf(checkId, id);
        alerts.delete(id);
        return [204, undefined];
      },
    ],
  ];
  return { routes, checks, alerts };
}
