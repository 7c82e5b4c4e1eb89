# The scalar binary: one image for `scalar api`, `scalar migrate` and, later,
# `scalar coordinator` and `scalar agent`.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY actors ./actors
COPY machines ./machines
COPY tsconfig.json ./
USER node
EXPOSE 8080
ENTRYPOINT ["node", "bin/scalar.mjs"]
CMD ["api"]
