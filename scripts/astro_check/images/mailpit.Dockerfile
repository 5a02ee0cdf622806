# Stand-in for axllent/mailpit:v1.22.3, built under that name by `make astro-check`: SMTP on 1025
# and, on 8025, the part of Mailpit's REST API the check reads (GET /api/v1/messages).
FROM astro-check/debian:bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-aiosmtpd \
    && rm -rf /var/lib/apt/lists/*
COPY mailpit_standin.py /usr/local/bin/mailpit_standin.py
EXPOSE 1025 8025
CMD ["python3", "/usr/local/bin/mailpit_standin.py"]
