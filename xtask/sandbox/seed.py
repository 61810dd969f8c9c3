"""Seed the sandbox's moto server with the service's whole topology, and write the sandbox suma.yaml.

For each environment (staging, production): in the primary region (eu-west-1) a VPC, an ECS cluster with
the stable and canary services and their task definition, an ALB with a weighted forward rule at 100/0
between the stable and canary target groups, the RDS PostgreSQL primary, the managed secrets, and the lock
table (made by `suma init`, as on a new account); in the DR region (eu-central-1) the DR ECS service, the DR ALB and the cross-region read replica;
in Route 53 a hosted zone with PRIMARY/SECONDARY failover records and their health checks.

Staging's `url` is SERVICE_URL (its front door), production's SANDBOX_PRODUCTION_URL; their metrics come
from the Prometheus at PROMETHEUS_URL. Prints what the sandbox's edge follows (each environment's rule,
target groups, hosted zone, record and load balancers' DNS names) as ENV_KEY=VALUE lines on stdout. With
SANDBOX_SERVICE_URLS, SUMA_BIN and SANDBOX_TEMPLATE, the task definitions are the shipped template
rendered by suma and the service's secrets hold those URLs.

Usage: python seed.py ENDPOINT_URL OUTPUT_SUMA_YAML SERVICE_URL PROMETHEUS_URL
       python seed.py --environment NAME ENDPOINT_URL SERVICE_URL PROMETHEUS_URL
       python seed.py --serve
       python seed.py --demo-config db ENDPOINT_URL SUMA_YAML OUTPUT NONCE ROLE PASSWORD PG_PORT
       python seed.py --demo-config dr ENDPOINT_URL SUMA_YAML OUTPUT NONCE SERVICE_URL PROMETHEUS_URL
The second form adds one self-contained DR test environment to a running sandbox and prints its
configuration as JSON; it creates only resources named after NAME, so it can run any number of times.
`--serve` does the same for each line `["NAME", "ENDPOINT_URL", "SERVICE_URL", "PROMETHEUS_URL"]` read
from standard input, answering each with one line, `{"config": ...}` or `{"error": "..."}`, until its
input ends: the tests seed hundreds of environments, and a process each spent most of its time starting
Python and loading boto3's service models.
The last two (for `cargo xtask demo`) write OUTPUT: SUMA_YAML's settings with one environment of their own,
printed as `env=NAME`: `demo-db` (staging's topology; its one secret holds the credentials of the PostgreSQL
role ROLE, which must exist with PASSWORD, rotated through the admin login in a second secret) or
`demo-dr-NONCE` (seeded like `--environment`). Each run uses new names: they can run any number of times.
"""

import base64
import functools
import hashlib
import json
import os
import secrets
import sys
import urllib.parse

import boto3
import yaml

PRIMARY = "eu-west-1"
DR = "eu-central-1"
ACCOUNT = "123456789012"
IMAGE_TAG = "1.4.2"
PREVIOUS_IMAGE_TAG = "1.3.0"


def image_in(region, tag=IMAGE_TAG):
    """The service's image in `region`'s registry: each region's tasks pull from their own registry, to
    which ECR replicates the image, so the two references differ and name one digest."""
    return f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com/auth-service:{tag}"


def image_manifest(release):
    """An OCI image manifest for `release`: ECR's digest is the hash of these bytes, so one release's
    manifest pushed to two regions has one digest there, and another release's another."""
    layer = hashlib.sha256(f"auth-service {release}".encode()).hexdigest()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f"sha256:{layer}", "size": 1024},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"sha256:{layer}", "size": 8_000_000}],
        },
        sort_keys=True,
    )


@functools.lru_cache(maxsize=None)
def push_image(endpoint, region, tag=IMAGE_TAG, release=IMAGE_TAG):
    """`release`'s manifest under `tag` in `region`'s `auth-service` repository (created scanned on push
    and with immutable tags, as the compliance checks want); its digest. Pushing the same twice is a no-op,
    and a seeder serving many environments pushes each once (the registry is the account's, not theirs)."""
    ecr = client("ecr", region, endpoint)
    try:
        ecr.create_repository(
            repositoryName="auth-service",
            imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
        )
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    manifest = image_manifest(release)
    try:
        return ecr.put_image(repositoryName="auth-service", imageManifest=manifest, imageTag=tag)["image"]["imageId"]["imageDigest"]
    except (ecr.exceptions.ImageAlreadyExistsException, ecr.exceptions.ImageTagAlreadyExistsException):
        found = ecr.describe_images(repositoryName="auth-service", imageIds=[{"imageTag": tag}])["imageDetails"]
        return found[0]["imageDigest"]
LOCK_TABLE = "suma-locks"
# What the sandbox's edge (its ALBs and DNS front doors) follows, per environment; printed by `main`.
EDGE = {}


@functools.lru_cache(maxsize=None)
def client(service, region, endpoint):
    # One client per service, region and endpoint: making one loads its service model (~20 ms of CPU),
    # and `--serve` seeds many environments with the same clients.
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def customer_key(endpoint, env, purpose, region=PRIMARY):
    """The customer-managed KMS key `alias/suma-finance-ENV-PURPOSE` of `region` with automatic rotation,
    created once."""
    kms = client("kms", region, endpoint)
    alias = f"alias/suma-finance-{env}-{purpose}"
    for page in kms.get_paginator("list_aliases").paginate():
        if any(a["AliasName"] == alias for a in page["Aliases"]):
            return kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]
    key = kms.create_key(Description=f"auth-service {purpose} ({env})")["KeyMetadata"]
    kms.enable_key_rotation(KeyId=key["KeyId"])
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return key["Arn"]


def db_placement(endpoint, env, region, vpc, subnets):
    """Where an environment's database lives in `region`: a DB subnet group, a security group of its own,
    the region's customer key, deletion protection and IAM authentication. The subnet group has the same
    name in both regions (each of its own region's subnets): moto looks a cross-region replica's group up
    in the source's region."""
    name = f"suma-finance-{env}-db"
    client("rds", region, endpoint).create_db_subnet_group(
        DBSubnetGroupName=name, DBSubnetGroupDescription=f"auth-service database ({env})", SubnetIds=subnets
    )
    sg = client("ec2", region, endpoint).create_security_group(
        GroupName=f"auth-db-{secrets.token_hex(3)}", Description="auth-service database", VpcId=vpc
    )["GroupId"]
    return {
        "KmsKeyId": customer_key(endpoint, env, "rds", region),
        "DBSubnetGroupName": name,
        "VpcSecurityGroupIds": [sg],
        "DeletionProtection": True,
        "EnableIAMDatabaseAuthentication": True,
    }


def network(endpoint, region):
    ec2 = client("ec2", region, endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{region}{az}")["Subnet"]["SubnetId"]
        for i, az in enumerate("ab")
    ]
    sg = ec2.create_security_group(GroupName=f"auth-service-{secrets.token_hex(3)}", Description="auth-service tasks", VpcId=vpc)["GroupId"]
    return vpc, subnets, sg


def task_definition(ecs, env, region):
    prefix = f"/suma-finance/auth/{env}"
    image = image_in(region)
    return ecs.register_task_definition(
        family="auth-service",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="1024",
        memory="2048",
        executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/auth-service-execution",
        taskRoleArn=f"arn:aws:iam::{ACCOUNT}:role/auth-service-task",
        containerDefinitions=[
            {
                "name": "auth-service",
                "image": image,
                "essential": True,
                "user": "10001",
                "readonlyRootFilesystem": True,
                "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
                "environment": [
                    {"name": "APP_ENV", "value": env},
                    {"name": "PORT", "value": "8080"},
                    {"name": "DEPLOYMENT_LABEL", "value": "stable"},
                ],
                "secrets": [
                    {"name": "DB_PASSWORD", "valueFrom": f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{prefix}/db-password"},
                    {"name": "JWT_KEYSET", "valueFrom": f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{prefix}/jwt-signing-key"},
                ],
                "healthCheck": {"command": ["CMD", "/auth-service", "healthcheck"], "interval": 15, "timeout": 5, "retries": 3},
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": f"/ecs/{env}/auth-service", "awslogs-region": region, "awslogs-stream-prefix": "app"},
                },
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]


def load_balancer(endpoint, region, env, subnets, sg, vpc, with_canary):
    elb = client("elbv2", region, endpoint)
    lb = elb.create_load_balancer(Name=f"auth-{env}", Subnets=subnets, SecurityGroups=[sg], Scheme="internet-facing", Type="application")[
        "LoadBalancers"
    ][0]

    def target_group(name):
        arn = elb.create_target_group(
            Name=name, Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip", HealthCheckPath="/ready"
        )["TargetGroups"][0]["TargetGroupArn"]
        # Connection draining before a task stops: 300 s on AWS, a few seconds in the sandbox.
        elb.modify_target_group_attributes(
            TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}]
        )
        return arn

    stable = target_group(f"auth-{env}-stable")
    canary = target_group(f"auth-{env}-canary") if with_canary else None
    listener = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": stable}],
    )["Listeners"][0]["ListenerArn"]
    rule = None
    if with_canary:
        rule = elb.create_rule(
            ListenerArn=listener,
            Priority=10,
            Conditions=[{"Field": "path-pattern", "Values": ["/*"]}],
            Actions=[
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [
                            {"TargetGroupArn": stable, "Weight": 100},
                            {"TargetGroupArn": canary, "Weight": 0},
                        ]
                    },
                }
            ],
        )["Rules"][0]["RuleArn"]
    return lb, listener, rule, stable, canary


def seed_environment(endpoint, env, service_url, prometheus_url, shipped=None):
    """One environment's topology. With `shipped` (the sandbox's own environments), its task definition is
    the shipped template rendered by suma, and the secrets the template references hold what the service
    reads (`shipped[env]`: database, Redis and SMTP URLs); the ECS agent runs its tasks. Without (test
    environments nobody runs), a minimal task definition of the same shape."""
    cluster = f"suma-finance-{env}"
    # Real processes on 2 cores: the sandbox's environments run 2 tasks each.
    desired = 4 if env == "production" and not shipped else 2

    vpc, subnets, sg = network(endpoint, PRIMARY)
    lb, listener, rule, stable_tg, canary_tg = load_balancer(endpoint, PRIMARY, env, subnets, sg, vpc, with_canary=True)
    dr_vpc, dr_subnets, dr_sg = network(endpoint, DR)
    dr_lb, _, _, dr_tg, _ = load_balancer(endpoint, DR, env, dr_subnets, dr_sg, dr_vpc, with_canary=False)

    # RDS: multi-AZ encrypted primary, cross-region read replica in the DR region.
    rds = client("rds", PRIMARY, endpoint)
    db_id = f"suma-finance-{env}-db"
    # The instances live in the environment's VPCs, each with its region's key, as suma's rebuilt ones must.
    placed = tuple(
        db_placement(endpoint, env, region, vpc_id, subnet_ids)
        for region, vpc_id, subnet_ids in ((PRIMARY, vpc, subnets), (DR, dr_vpc, dr_subnets))
    )
    primary = rds.create_db_instance(
        DBInstanceIdentifier=db_id,
        DBInstanceClass="db.r6g.large",
        Engine="postgres",
        EngineVersion="15.5",
        AllocatedStorage=100,
        MasterUsername="auth_admin",
        MasterUserPassword=secrets.token_urlsafe(24),
        MultiAZ=True,
        StorageEncrypted=True,
        KmsKeyId=customer_key(endpoint, env, "rds"),
        BackupRetentionPeriod=30 if env == "production" else 7,
        DeletionProtection=True,
        PubliclyAccessible=False,
        **{k: v for k, v in placed[0].items() if k not in ("KmsKeyId", "DeletionProtection")},
    )["DBInstance"]
    replica_id = f"{db_id}-replica"
    client("rds", DR, endpoint).create_db_instance_read_replica(
        DBInstanceIdentifier=replica_id,
        SourceDBInstanceIdentifier=primary["DBInstanceArn"],
        DBInstanceClass="db.r6g.large",
        SourceRegion=PRIMARY,
        **placed[1],
    )

    # Route 53: failover records with health checks.
    r53 = client("route53", PRIMARY, endpoint)
    domain = "suma-finance.com" if env == "production" else f"{env}.suma-finance.com"
    record = f"auth.{domain}"
    zone = r53.create_hosted_zone(Name=domain, CallerReference=secrets.token_hex(8))["HostedZone"]["Id"].split("/")[-1]
    checks = {}
    for role, target in (("primary", lb["DNSName"]), ("secondary", dr_lb["DNSName"])):
        checks[role] = r53.create_health_check(
            CallerReference=secrets.token_hex(8),
            HealthCheckConfig={
                "Type": "HTTPS",
                "FullyQualifiedDomainName": target,
                "ResourcePath": "/ready",
                "Port": 443,
                "RequestInterval": 10,
                "FailureThreshold": 3,
            },
        )["HealthCheck"]["Id"]
    changes = []
    # Test environments' load balancers are dual-stack: an A record and its AAAA twin per role, which a
    # failover moves together. The sandbox's own environments keep A records (their edge serves IPv4).
    record_types = ("A",) if shipped else ("A", "AAAA")
    for (role, target, check), record_type in (
        (entry, record_type)
        for entry in (("PRIMARY", lb, checks["primary"]), ("SECONDARY", dr_lb, checks["secondary"]))
        for record_type in record_types
    ):
        changes.append(
            {
                "Action": "CREATE",
                "ResourceRecordSet": {
                    "Name": record,
                    "Type": record_type,
                    "SetIdentifier": f"auth-{role.lower()}",
                    "Failover": role,
                    "HealthCheckId": check,
                    "AliasTarget": {
                        "HostedZoneId": target["CanonicalHostedZoneId"],
                        "DNSName": target["DNSName"],
                        "EvaluateTargetHealth": True,
                    },
                },
            }
        )
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})

    # Secrets, replicated to the DR region.
    sm = client("secretsmanager", PRIMARY, endpoint)
    managed = []
    for name, kind, consumers in (
        ("db-password", "db-password", ["auth-service"]),
        ("jwt-signing-key", "jwt-signing-key", ["auth-service"]),
        ("encryption-key", "random", ["auth-service"]),
        ("hmac-signing-key", "random", ["auth-service"]),
    ):
        secret_id = f"/suma-finance/auth/{env}/{name}"
        sm.create_secret(
            Name=secret_id,
            # The services sign with the JWT key (JWT_KEYS_SECRET_ID): it must be a real key.
            SecretString=rsa_private_pem() if kind == "jwt-signing-key" else secrets.token_urlsafe(32),
            KmsKeyId=customer_key(endpoint, env, "secrets"),
            AddReplicaRegions=[{"Region": DR}],
        )
        entry = {"id": secret_id, "kind": kind, "rotation_days": 90, "consumers": consumers}
        if kind == "jwt-signing-key":
            # What the sandbox's services run with; 2048-bit keys keep a rotation quick on a small machine.
            entry["jwt"] = {"key_bits": 2048, "issuer": "auth-service", "audience": "suma", "pickup_timeout": "60s"}
        managed.append(entry)
    if shipped:
        managed.extend(service_secrets(endpoint, env, shipped[env]))

    config = {
        "tier": "production" if env == "production" else "staging",
        "primary_region": PRIMARY,
        "dr_region": DR,
        "url": service_url,
        "ecs": {
            "cluster": cluster,
            "service": "auth-service",
            "canary_service": "auth-service-canary",
            "container": "auth-service",
            "container_port": 8080,
            "desired_count": desired,
            "canary_count": 1,
            "dr": {"cluster": cluster, "service": "auth-service", "standby_count": 0},
        },
        "alb": {
            "listener_arn": listener,
            "rule_arn": rule,
            "stable_target_group_arn": stable_tg,
            "canary_target_group_arn": canary_tg,
            "dr_load_balancer_dns": dr_lb["DNSName"],
        },
        "rds": {
            "primary": {"identifier": db_id, "region": PRIMARY},
            "replica": {"identifier": replica_id, "region": DR},
        },
        "dns": {
            "hosted_zone_id": zone,
            "record_name": record,
            "primary_health_check_id": checks["primary"],
            "secondary_health_check_id": checks["secondary"],
        },
        "secrets": managed,
        "datadog": {"site": "datadoghq.eu", "tags": ["service:auth-service", f"env:{env}"]},
        "metrics": {"provider": "prometheus", "prometheus_url": prometheus_url},
        # The analysis from the file's template, as an operator writes it once for every environment.
        "canary": {
            "steps": [{"weight": 10, "duration": "20s"}, {"weight": 50, "duration": "20s"}],
            "analysis": "sandbox",
        },
        # Blue/green judged as the canary is; staging's test listener forwards to the canary target group.
        "bluegreen": {"bake": "20s", "keep_blue": "10s"},
    }
    if env == "staging" and "SANDBOX_STAGING_TEST_URL" in os.environ:
        config["bluegreen"]["test_url"] = os.environ["SANDBOX_STAGING_TEST_URL"]

    EDGE[env] = {
        "rule_arn": rule,
        "stable_tg": stable_tg,
        "canary_tg": canary_tg,
        "dr_tg": dr_tg,
        "zone": zone,
        "record": record,
        "primary_dns": lb["DNSName"],
        "dr_dns": dr_lb["DNSName"],
    }

    # ECS last: the task definition is rendered from the configuration above; its image is in each
    # region's registry.
    # The release before is there too, as a registry keeps its history.
    for region in (PRIMARY, DR):
        for release in (PREVIOUS_IMAGE_TAG, IMAGE_TAG):
            push_image(endpoint, region, release, release)
    ecs = client("ecs", PRIMARY, endpoint)
    ecs.create_cluster(clusterName=cluster)
    dr_ecs = client("ecs", DR, endpoint)
    dr_ecs.create_cluster(clusterName=cluster)
    if shipped:
        td = register_rendered(ecs, env, config, PRIMARY)
        dr_td = register_rendered(dr_ecs, env, config, DR)
    else:
        td = task_definition(ecs, env, PRIMARY)
        dr_td = task_definition(dr_ecs, env, DR)
    net = {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": [sg], "assignPublicIp": "DISABLED"}}
    for name, count, tg in (("auth-service", desired, stable_tg), ("auth-service-canary", 0, canary_tg)):
        ecs.create_service(
            cluster=cluster,
            serviceName=name,
            taskDefinition=td,
            desiredCount=count,
            launchType="FARGATE",
            networkConfiguration=net,
            loadBalancers=[{"targetGroupArn": tg, "containerName": "auth-service", "containerPort": 8080}],
            deploymentConfiguration={
                "deploymentCircuitBreaker": {"enable": True, "rollback": True},
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
            },
        )
    dr_ecs.create_service(
        cluster=cluster,
        serviceName="auth-service",
        taskDefinition=dr_td,
        desiredCount=0,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": dr_subnets, "securityGroups": [dr_sg], "assignPublicIp": "DISABLED"}},
        loadBalancers=[{"targetGroupArn": dr_tg, "containerName": "auth-service", "containerPort": 8080}],
    )
    return config


def service_secrets(endpoint, env, urls):
    """The secrets `templates/ecs/auth-service.taskdef.yaml` hands the service, in the formats it parses,
    replicated to the DR region; returns those suma rotates, as configuration entries."""
    sm = client("secretsmanager", PRIMARY, endpoint)
    prefix = f"/suma-finance/auth/{env}"
    # The admin login that may ALTER ROLE the tasks' role (credentials JSON; the sandbox's superuser).
    sm.create_secret(Name=f"{prefix}/db-admin", SecretString=json.dumps(urls["db_admin"]))
    values = {
        "database-url": urls["database_url"],
        "redis-url": urls["redis_url"],
        "smtp-url": urls["smtp_url"],
        # `kid:base64url-key` entries, the first signs.
        "reset-token-keys": f"k{secrets.token_hex(4)}:{secrets.token_urlsafe(32)}",
        # The scraper's bearer token for /metrics (the sandbox's agent overlays its own, which Prometheus has).
        "metrics-token": secrets.token_hex(32),
        # The sealing key and the older ones that still open (`totp-key`), picked apart by the template.
        "totp-encryption-key": json.dumps({"current": base64.b64encode(secrets.token_bytes(32)).decode(), "previous": ""}),
    }
    # The replication group the `redis-url` token belongs to; the sandbox's Redis of the environment stands
    # for it (the ECS agent's overlay applies token changes there; moto keeps the group's state).
    token = urllib.parse.urlparse(urls["redis_url"]).password
    client("elasticache", PRIMARY, endpoint).create_replication_group(
        ReplicationGroupId=urls["redis_group"],
        ReplicationGroupDescription=f"auth-service sessions and rate limits ({env})",
        Engine="redis",
        CacheNodeType="cache.t4g.small",
        NumCacheClusters=2,
        AutomaticFailoverEnabled=True,
        MultiAZEnabled=True,
        TransitEncryptionEnabled=True,
        AtRestEncryptionEnabled=True,
        AuthToken=token,
        SnapshotRetentionLimit=7,
    )
    for name, value in values.items():
        sm.create_secret(
            Name=f"/suma-finance/auth/{env}/{name}",
            SecretString=value,
            KmsKeyId=customer_key(endpoint, env, "secrets"),
            AddReplicaRegions=[{"Region": DR}],
        )
    return [
        {
            "id": f"{prefix}/database-url",
            "kind": "database-url",
            "rotation_days": 90,
            "consumers": ["auth-service"],
            "database": {"admin_secret": f"{prefix}/db-admin"},
        },
        {"id": f"{prefix}/reset-token-keys", "kind": "keyring", "rotation_days": 90, "consumers": ["auth-service"]},
        {"id": f"{prefix}/totp-encryption-key", "kind": "totp-key", "rotation_days": 365, "consumers": ["auth-service"]},
        {
            "id": f"{prefix}/redis-url",
            "kind": "redis-auth",
            "rotation_days": 90,
            "consumers": ["auth-service"],
            "redis": {"replication_group": urls["redis_group"]},
        },
    ]


# The canary analysis every sandbox environment names: seconds where production's are minutes, so a
# deploy is judged within a test's time.
ANALYSIS_TEMPLATES = {
    "sandbox": {
        "interval": "5s",
        "max_error_rate": 0.005,
        "max_p95_latency_ms": 200.0,
        "failure_limit": 1,
        "consecutive_error_limit": 3,
        "min_samples": 20,
        "no_data": "fail",
        "window": "15s",
    }
}


def register_rendered(ecs, env, config, region):
    """Registers the shipped template as suma renders it for `env` in `region` (`suma taskdef render`)."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(
            {"version": 1, "lock": {"table": LOCK_TABLE, "region": PRIMARY}, "analysis_templates": ANALYSIS_TEMPLATES, "environments": {env: config}},
            f,
        )
        path = f.name
    command = [
        os.environ["SUMA_BIN"], "--config", path, "--output", "json", "taskdef", "render", "--env", env,
        "--template", os.environ["SANDBOX_TEMPLATE"], "--image", image_in(region), "--var", f"region={region}",
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    os.unlink(path)
    if done.returncode != 0:
        raise SystemExit(f"suma taskdef render failed:\n{done.stderr}")
    spec = json.loads(done.stdout)
    return ecs.register_task_definition(**spec)["taskDefinition"]["taskDefinitionArn"]


def rsa_private_pem(bits=2048):
    """A new RSA private key as PKCS#8 PEM without an `alg:` line, so RS256: the sandbox starts where a
    service whose keys predate ES256 (the default for new keys) stands, and its first JWT rotation is a
    migration between algorithms, which the rotation test then proves."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def seed_drill_environment(endpoint, env, service_url, prometheus_url):
    """A self-contained environment for DR failover tests and drills: the full topology of
    `seed_environment` under its own names (so a failover changes nothing another test reads), the DR
    replica's lag read from PostgreSQL (`SUMA_DR_REPLICA_URL`), and the service URL as the DR endpoint."""
    config = seed_environment(endpoint, env, service_url, prometheus_url)
    config["dr"] = {"rto": "15m", "rpo": "5m", "replica_lag": "postgres", "dr_url": service_url}
    # Both services scale with Application Auto Scaling, as production's do: a switch suspends them while
    # it moves capacity. The DR service's scheduled scaling is already suspended, so its restore is seen.
    cluster = f"suma-finance-{env}"
    for region, low, suspended in ((PRIMARY, 2, {}), (DR, 0, {"ScheduledScalingSuspended": True})):
        client("application-autoscaling", region, endpoint).register_scalable_target(
            ServiceNamespace="ecs",
            ResourceId=f"service/{cluster}/auth-service",
            ScalableDimension="ecs:service:DesiredCount",
            MinCapacity=low,
            MaxCapacity=8,
            SuspendedState=suspended,
        )
    return config


def demo_config(kind, endpoint, suma_yaml, output, nonce, *rest):
    """The demo's own configuration: a database-password environment (`db`) or a DR environment (`dr`)."""
    with open(suma_yaml) as f:
        config = yaml.safe_load(f)
    if kind == "db":
        role, password, pg_port = rest
        name, env = "demo-db", dict(config["environments"]["staging"])
        env["secrets"] = demo_secrets(endpoint, f"/suma-demo/{nonce}", role, password, pg_port)
    else:
        service_url, prometheus_url = rest
        name = f"demo-dr-{nonce}"
        env = seed_drill_environment(endpoint, name, service_url, prometheus_url)
    config["environments"] = {name: env}
    config["defaults"] = {"environment": name}
    with open(output, "w") as f:
        f.write("# Written by `cargo xtask demo` for its own environment. Do not edit.\n")
        yaml.safe_dump(config, f, sort_keys=False)
    print(f"env={name}")


def demo_secrets(endpoint, prefix, role, password, pg_port):
    """A role's credentials and the admin login that may change its password, as Secrets Manager secrets."""
    sm = client("secretsmanager", PRIMARY, endpoint)

    def credentials(username, secret):
        return json.dumps(
            {"username": username, "password": secret, "host": "127.0.0.1", "port": int(pg_port), "dbname": "postgres", "engine": "postgres"}
        )

    sm.create_secret(Name=f"{prefix}/db-password", SecretString=credentials(role, password))
    # The sandbox trusts its superuser on loopback: the admin login needs no password.
    sm.create_secret(Name=f"{prefix}/db-admin", SecretString=credentials("postgres", ""))
    return [
        {
            "id": f"{prefix}/db-password",
            "kind": "db-password",
            "rotation_days": 30,
            "database": {"admin_secret": f"{prefix}/db-admin"},
        }
    ]


def clashing_secret(endpoint, name):
    """A secret whose replication to the DR region failed: the DR region already held a secret of its
    name, so Secrets Manager reports the replica `Failed` with the reason (as moto does)."""
    client("secretsmanager", DR, endpoint).create_secret(Name=name, SecretString=secrets.token_urlsafe(16))
    client("secretsmanager", PRIMARY, endpoint).create_secret(
        Name=name, SecretString=secrets.token_urlsafe(16), AddReplicaRegions=[{"Region": DR}]
    )


def main():
    if sys.argv[1] == "--clashing-secret":
        clashing_secret(*sys.argv[2:4])
        return
    if sys.argv[1] == "--demo-config":
        demo_config(*sys.argv[2:])
        return
    if sys.argv[1] == "--serve":
        serve()
        return
    if sys.argv[1] == "--environment":
        # One more environment on a running sandbox, printed as JSON (tests add it to their own config).
        name, endpoint, service_url, prometheus_url = sys.argv[2:6]
        print(json.dumps(seed_drill_environment(endpoint, name, service_url, prometheus_url)))
        return
    endpoint, output, service_url, prometheus_url = sys.argv[1:5]
    # What the sandbox's services connect to (JSON: per environment), from `cargo xtask sandbox up`.
    shipped = json.loads(os.environ["SANDBOX_SERVICE_URLS"]) if "SANDBOX_SERVICE_URLS" in os.environ else None
    # Each environment's `url` is its front door; production's comes from the environment.
    urls = {"staging": service_url, "production": os.environ.get("SANDBOX_PRODUCTION_URL", service_url)}
    config = {
        "version": 1,
        "defaults": {"environment": "staging"},
        # The shipped default lease (60 s): a shorter one only narrows the window a renewal has when the
        # lock table is slow to answer, which the suite's load on moto makes happen.
        "lock": {"table": LOCK_TABLE, "region": PRIMARY},
        "analysis_templates": ANALYSIS_TEMPLATES,
        "environments": {env: seed_environment(endpoint, env, urls[env], prometheus_url, shipped) for env in ("staging", "production")},
    }
    for env, edge in EDGE.items():
        for key, value in edge.items():
            print(f"{env}_{key}={value}")
    with open(output, "w") as f:
        f.write("# Generated by `cargo xtask sandbox up` for the local moto sandbox. Do not edit.\n")
        yaml.safe_dump(config, f, sort_keys=False)
    suma_init(endpoint, output)


def serve():
    """`--serve`: one environment a line of input, one answer a line of output."""
    import traceback

    for line in sys.stdin:
        try:
            name, endpoint, service_url, prometheus_url = json.loads(line)
            answer = {"config": seed_drill_environment(endpoint, name, service_url, prometheus_url)}
        except Exception:  # noqa: BLE001  (the caller reports it; the next environment may well succeed)
            answer = {"error": traceback.format_exc()}
        print(json.dumps(answer), flush=True)


def suma_init(endpoint, config):
    """The lock table, made as an operator makes it on a new account: `suma init` (key schema,
    point-in-time recovery, deletion protection)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION=PRIMARY,
        AWS_EC2_METADATA_DISABLED="true",
        NO_COLOR="1",
    )
    command = [os.environ["SUMA_BIN"], "--config", config, "--output", "json", "init", "--yes"]
    import subprocess

    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"suma init failed:\n{done.stderr}")
    made = json.loads(done.stdout)
    if made.get("table") != LOCK_TABLE:
        raise SystemExit(f"suma init made no table `{LOCK_TABLE}`: {done.stdout}")


if __name__ == "__main__":
    main()
