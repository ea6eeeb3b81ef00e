// A DigitalOcean Managed PostgreSQL cluster for the app (`database: managed`): the cluster, the
// app's database and user, and a database firewall that admits the stack's droplet alone. The
// cluster accepts TLS connections only; the app and the host's scripts check its certificate and
// host name against the cluster's CA (sslmode verify-full).
import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { MANAGED_PG_VERSION } from "../config";
import { POSTGRES_DB, POSTGRES_USER } from "../render/envFile";
import { doStackName } from "./doNames";

export interface ManagedDatabaseArgs {
  /** Region slug: the droplet's, so that the private network reaches the cluster. */
  region: pulumi.Input<string>;
  /** Size slug of each node. */
  size: pulumi.Input<string>;
  /** Nodes: the primary and its standbys. */
  nodes: pulumi.Input<number>;
  /** The droplets the database firewall admits: the stack's app droplets. */
  dropletIds: pulumi.Input<string>[];
  /** Protect the cluster and the app's database from deletion and replacement (protectData). Plain: a resource option. */
  protect: boolean;
}

/** How the app reaches the cluster: its private host, port, the app user's password, the CA. */
export interface ManagedDatabaseConnection {
  host: string;
  port: number;
  password: string;
  caCert: string;
}

export class ManagedDatabase extends pulumi.ComponentResource {
  /** The connection (secret: it holds the app user's password). */
  public readonly connection: pulumi.Output<ManagedDatabaseConnection>;
  /** The admin user's password, for the step that lets the app user create tables (secret). */
  public readonly adminPassword: pulumi.Output<string>;
  /** The ids of the cluster, the app's database and its user: a new one of any re-runs the grant. */
  public readonly grantTriggers: pulumi.Output<string>[];
  /** The database firewall: nothing connects before it admits the droplet alone. */
  public readonly firewall: pulumi.Resource;

  constructor(name: string, args: ManagedDatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("chitram:digitalocean:ManagedDatabase", name, {}, opts);
    const stack = doStackName(pulumi.getStack());
    const { protect } = args;
    // The data itself: never deleted or replaced while protectData is on. A larger size or more
    // nodes is an in-place resize.
    const cluster = new digitalocean.DatabaseCluster(
      `${name}-cluster`,
      {
        name: `${name}-${stack}`,
        engine: "pg",
        version: MANAGED_PG_VERSION,
        size: args.size,
        nodeCount: args.nodes,
        region: args.region,
        tags: ["chitram", `chitram-${stack}`],
      },
      { parent: this, protect },
    );
    const db = new digitalocean.DatabaseDb(
      `${name}-db`,
      { clusterId: cluster.id, name: POSTGRES_DB },
      { parent: this, protect },
    );
    const user = new digitalocean.DatabaseUser(
      `${name}-user`,
      { clusterId: cluster.id, name: POSTGRES_USER },
      { parent: this, dependsOn: [db] },
    );
    // Only the stack's droplet may connect: a new droplet replaces the rule.
    this.firewall = new digitalocean.DatabaseFirewall(
      `${name}-firewall`,
      { clusterId: cluster.id, rules: args.dropletIds.map((value) => ({ type: "droplet", value })) },
      { parent: this },
    );
    const ca = digitalocean.getDatabaseCaOutput({ clusterId: cluster.id }, { parent: this });
    this.grantTriggers = [cluster.id, db.id, user.id];
    this.adminPassword = pulumi.secret(cluster.password);
    this.connection = pulumi.secret(
      pulumi
        .all([cluster.privateHost, cluster.port, user.password, ca.certificate])
        .apply(([host, port, password, caCert]) => ({ host, port, password, caCert })),
    );
    this.registerOutputs({});
  }
}
