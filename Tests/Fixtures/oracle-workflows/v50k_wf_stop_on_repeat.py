with model.generate("The Eiffel Tower is in the city of", max_new_tokens=10) as tracer:
    seen = [].save()
    words = [].save()
    for step in tracer.iter[:]:
        tok = model.lm_head.output[0, -1].argmax(dim=-1).item()
        if tok in seen:
            print("repeat at step", step, model.tokenizer.decode(tok))
            tracer.stop()
        elif step == 0:
            print("first token", tok)
        else:
            words.append(model.tokenizer.decode(tok))
        seen.append(tok)
print(seen, words)
