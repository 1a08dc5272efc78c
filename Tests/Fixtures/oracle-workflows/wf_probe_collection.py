import torch
data = [("Paris is in France", 1), ("Rome is in Italy", 1), ("The cat sat down", 0), ("I like green tea", 0)]
feats, labels = [], []
for text, label in data:
    with model.trace(text):
        feats.append(model.transformer.h[2].output[0][0].mean(0).save())
    labels.append(label)
X = torch.stack(feats)
y = torch.tensor(labels)
w = torch.linalg.lstsq(torch.cat([X, torch.ones(4, 1)], 1), y.float().unsqueeze(1)).solution if False else None
mu1 = X[y == 1].mean(0)
mu0 = X[y == 0].mean(0)
direction = (mu1 - mu0) / (mu1 - mu0).norm()
scores = X @ direction
print(X.shape, [round(s, 4) for s in scores.tolist()], (scores > scores.mean()).long().tolist())
