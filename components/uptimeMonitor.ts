import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { doStackName } from "./doNames";

export interface UptimeMonitorArgs {
  /** The public URL checked, e.g. https://chitram.example.com/health. */
  url: pulumi.Input<string>;
  /** "https" in domain mode, "http" in IP mode. */
  type: pulumi.Input<string>;
  /** Who is emailed when the URL is down. */
  alertEmails: pulumi.Input<pulumi.Input<string>[]>;
  /**
   * The URL that answers 200 while backups succeed (Caddy serves the backup status file); a
   * second check and alert watch it. Default: undefined (no backup check).
   */
  backupStatusUrl?: pulumi.Input<string>;
  /** Steps after which the app answers on the URL (the health step); the check waits for them. Default: []. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

/**
 * A DigitalOcean uptime check on the public health URL and a "down" alert to the given emails,
 * and the same for the backup status URL: failing or stopped backups email the same people.
 * Created only after the app answered: a check that exists before it emails "down" during every
 * first deploy.
 */
export class UptimeMonitor extends pulumi.ComponentResource {
  constructor(name: string, args: UptimeMonitorArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chitram:digitalocean:UptimeMonitor", name, {}, opts);
    const stack = doStackName(pulumi.getStack());
    const watch = (suffix: string, what: string, target: pulumi.Input<string>, period: string) => {
      const check = new digitalocean.UptimeCheck(
        `${name}-${suffix}check`,
        {
          name: `${name}-${stack}-${what}`,
          target,
          type: args.type,
          regions: ["us_east", "eu_west"],
        },
        { parent: this, dependsOn: args.dependsOn ?? [] },
      );
      new digitalocean.UptimeAlert(
        `${name}-${suffix}down`,
        {
          name: `${name}-${stack}-${what}-down`,
          checkId: check.id,
          type: "down",
          period,
          notifications: [{ emails: args.alertEmails }],
        },
        { parent: this },
      );
    };
    watch("", "health", args.url, "2m");
    // "chitram-uptime-<stack>-backups-down": no backup succeeded lately (docs/RUNBOOK.md, "Backups").
    if (args.backupStatusUrl !== undefined) watch("backups-", "backups", args.backupStatusUrl, "10m");
    this.registerOutputs({});
  }
}
