"""Choosing frames for people to label and bringing their labels back: the samplers and gates that pick frames
(uncertainty, diversity, class balance, a random control arm, quotas, near-duplicate suppression), the review queue on
Redis, the Label Studio server, client and sync (tasks with the champion's pre-annotations, webhooks and polling), and
the cuts that turn harvested labels into data set versions."""
