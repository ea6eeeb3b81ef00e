import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { doStackName } from "./dropletHost";

export interface UptimeMonitorArgs {
  /** The public URL checked, e.g. https://chitram.example.com/health. Default: none (required). */
  url: pulumi.Input<string>;
  /** "https" in domain mode, "http" in IP mode. Default: none (required). */
  type: pulumi.Input<string>;
  /** Who is emailed when the URL is down. Default: none (required). */
  alertEmails: pulumi.Input<pulumi.Input<string>[]>;
  /** Steps after which the app answers on the URL (the health step); the check waits for them. Default: []. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

/**
 * A DigitalOcean uptime check on the public health URL and a "down" alert to the given emails.
 * Created only after the app answered: a check that exists before it emails "down" during every
 * first deploy.
 */
export class UptimeMonitor extends pulumi.ComponentResource {
  constructor(name: string, args: UptimeMonitorArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chitram:digitalocean:UptimeMonitor", name, {}, opts);
    const stack = doStackName(pulumi.getStack());
    const check = new digitalocean.UptimeCheck(
      `${name}-check`,
      {
        name: `${name}-${stack}-health`,
        target: args.url,
        type: args.type,
        regions: ["us_east", "eu_west"],
      },
      { parent: this, dependsOn: args.dependsOn ?? [] },
    );
    new digitalocean.UptimeAlert(
      `${name}-down`,
      {
        name: `${name}-${stack}-down`,
        checkId: check.id,
        type: "down",
        period: "2m",
        notifications: [{ emails: args.alertEmails }],
      },
      { parent: this },
    );
    this.registerOutputs({});
  }
}
