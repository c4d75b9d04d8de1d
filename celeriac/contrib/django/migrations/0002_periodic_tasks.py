from django.db import migrations, models


class Migration(migrations.Migration):  # type: ignore[misc]  # Django ships no type hints
    dependencies = [
        ("celeriac", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="PeriodicTask",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(help_text="Unique; names the entry in logs and the CLI.", max_length=200,
                                          unique=True)),
                ("task", models.CharField(help_text="The registered task name, e.g. proj.tasks.cleanup.",
                                          max_length=200)),
                ("every", models.FloatField(blank=True, help_text="Interval: run every this many periods.",
                                            null=True)),
                ("period", models.CharField(blank=True, choices=[("seconds", "seconds"), ("minutes", "minutes"),
                                                                 ("hours", "hours"), ("days", "days")],
                                            default="seconds", max_length=10)),
                ("crontab", models.CharField(
                    blank=True, max_length=200,
                    help_text="Crontab: minute hour day-of-month month day-of-week, e.g. '30 2 * * *' or "
                              "'*/15 * * * mon-fri'.")),
                ("crontab_timezone", models.CharField(
                    blank=True, max_length=64,
                    help_text="The crontab's zone, e.g. Europe/Berlin; blank: the app's timezone.")),
                ("args", models.JSONField(blank=True, default=list,
                                          help_text='Positional arguments, a JSON list: ["a", 1].')),
                ("kwargs", models.JSONField(blank=True, default=dict,
                                            help_text='Keyword arguments, a JSON object: {"a": 1}.')),
                ("queue", models.CharField(blank=True, help_text="Blank: the task's own routing.", max_length=200)),
                ("priority", models.PositiveSmallIntegerField(blank=True, help_text="0-9, 9 runs first.",
                                                              null=True)),
                ("expire_seconds", models.FloatField(
                    blank=True, null=True, help_text="A run not started this long after its tick is not run.")),
                ("one_off", models.BooleanField(default=False,
                                                help_text="Run once, at the first tick, then switch off.")),
                ("start_time", models.DateTimeField(blank=True, help_text="No tick before this.", null=True)),
                ("enabled", models.BooleanField(default=True)),
                ("missed", models.CharField(
                    choices=[("run_once", "run the latest missed tick once"), ("skip", "skip missed ticks")],
                    default="run_once", max_length=10,
                    help_text="What to do about ticks no beat could send (no beat was running).")),
                ("overlap", models.CharField(
                    choices=[("allow", "always send"), ("skip", "skip a tick while the previous run is unfinished")],
                    default="allow", max_length=10)),
                ("description", models.TextField(blank=True)),
                ("last_run_at", models.DateTimeField(
                    blank=True, editable=False, null=True,
                    help_text="The fire time of the last tick sent (or of the last run by hand).")),
                ("last_task_id", models.CharField(blank=True, editable=False, max_length=255)),
                ("total_run_count", models.PositiveIntegerField(default=0, editable=False)),
                ("date_changed", models.DateTimeField(auto_now=True)),
            ],
            options={
                "verbose_name": "periodic task",
                "verbose_name_plural": "periodic tasks",
                "ordering": ["name"],
            },
        ),
    ]
